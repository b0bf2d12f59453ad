"""The Space in a real browser: Playwright drives Debian's Chromium (headless) through Train and Chat.

Needs ``pip install playwright`` and ``apt-get install -y chromium`` (never ``playwright install``:
Debian's browser is used through ``executable_path``). Screenshots are kept as test artifacts in
``$HF_ITA_ARTIFACTS_DIR`` or a pytest temporary directory (its path is printed).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jobs_server import GRADIO_MOCK_OAUTH_TOKEN, JobScenario, JobsHubServer, point_hub_client_at
from test_space import SPACE_DIR, load_space_module

pytest_plugins = ("job_image",)  # its image venv fixture, built once per session for both job rehearsals
CHROMIUM = Path("/usr/bin/chromium")
VIEWPORT = {"width": 1280, "height": 900}
"""A laptop screen: what must be seen (status, errors, newest log lines) is checked inside it."""
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed: pip install playwright")
if not CHROMIUM.exists() and not shutil.which("chromium"):
    pytest.skip("Debian's Chromium is not installed: apt-get install -y chromium", allow_module_level=True)

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:Gradio does not support OAuth")]


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    target = os.environ.get("HF_ITA_ARTIFACTS_DIR")
    folder = Path(target) / "space-screenshots" if target else tmp_path_factory.mktemp("space-screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots: {folder}")
    return folder


@pytest.fixture(scope="module")
def app_url():
    with pytest.MonkeyPatch.context() as mp, JobsHubServer() as server:
        point_hub_client_at(mp, server)
        server.add_named_token(GRADIO_MOCK_OAUTH_TOKEN, "mario")
        demo = load_space_module().build_app()
        demo.queue()
        _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
        try:
            yield url.rstrip("/"), server
        finally:
            demo.close()


@pytest.fixture(scope="module")
def page(app_url):
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM if CHROMIUM.exists() else shutil.which("chromium")),
                                    args=CHROMIUM_ARGS)
        page = browser.new_page(viewport=VIEWPORT)
        page.set_default_timeout(90_000)
        yield page
        browser.close()


def _js_text_includes(selector: str, text: str, prop: str = "innerText") -> str:
    return f"(() => {{ const e = document.querySelector({selector!r}); return !!e && e.{prop}.includes({text!r}); }})()"


def in_viewport(page, selector: str) -> bool:
    """Whether the element is on screen now, within the window, without scrolling."""
    return page.evaluate("""(sel) => { const r = document.querySelector(sel).getBoundingClientRect();
        return r.height > 0 && r.top >= 0 && r.bottom <= window.innerHeight; }""", selector)


def newest_log_line_visible(page) -> bool:
    """The log box is scrolled to its end: its last line is what the user sees."""
    return page.evaluate("""() => { const t = document.querySelector('#logs textarea');
        return t.scrollHeight > t.clientHeight && t.scrollTop + t.clientHeight >= t.scrollHeight - 4; }""")


def assert_readable(page, selector: str) -> str:
    """The element's shown text: no traceback, no Markdown eaten (``_`` kept, no stray italics)."""
    text = page.inner_text(selector)
    assert "Traceback" not in text and "\\_" not in text, text
    assert not page.query_selector_all(f"{selector} em"), page.inner_html(selector)
    return text


def test_train_tab_sign_in_launch_running_logs_cancel(app_url, page, artifacts):
    url, server = app_url
    from huggingface_hub import HfApi

    HfApi(endpoint=server.url, token=GRADIO_MOCK_OAUTH_TOKEN).create_repo("mario/domande", repo_type="dataset",
                                                                          exist_ok=True)
    server.queue_scenario(JobScenario(scheduling_s=1.0, log_lines=[f"passo {i}: loss {3 - i / 200:.3f}" for i in range(600)],
                                      line_interval_s=0.1))
    page.goto(url)
    page.wait_for_function("document.documentElement.lang === 'it'", timeout=20_000)  # the page declares Italian
    page.get_by_role("button", name="Accedi con Hugging Face / Sign in").click()  # Gradio's local OAuth mock
    page.wait_for_function(_js_text_includes("#who", "signed in as mario"))
    assert page.input_value("#output-repo textarea, #output-repo input") == "mario/qwen2.5-7b-ita"
    page.screenshot(path=str(artifacts / "1-signed-in.png"), full_page=True)

    # a dataset id typed while the choice is still "bundled" selects the Hub source: the job trains on it
    assert page.get_by_label("Dati italiani inclusi (bundled)").is_checked()
    page.locator("#dataset-id textarea, #dataset-id input").first.press_sequentially("mario/domande")
    page.wait_for_function("(() => { const r = document.querySelector('#data-source input[value=\"Dataset del Hub (Hub dataset)\"]');"
                           " return !!r && r.checked; })()")

    page.click("#launch")
    page.wait_for_function(_js_text_includes("#launch-msg", "Job avviato / started"))
    page.wait_for_function(_js_text_includes("#stage", "RUNNING"))
    page.wait_for_function("(() => { const t = document.querySelector('#logs textarea'); return !!t && t.value.includes('passo 40:'); })()")
    (job,) = server.jobs.values()
    assert page.input_value("#job-id textarea, #job-id input") == job.id
    assert job.spec["labels"]["hf-ita-via"] == "space" and job.spec["secrets"] == {"HF_TOKEN": GRADIO_MOCK_OAUTH_TOKEN}
    from hf_ita_plugin.jobs.client import decode_job_config

    assert decode_job_config(job.spec["environment"]).data.train == "mario/domande"
    page.wait_for_function("""() => { const t = document.querySelector('#logs textarea');
        return t.scrollHeight > t.clientHeight && t.scrollTop + t.clientHeight >= t.scrollHeight - 4; }""")
    page.locator("#logs").scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts / "2-running-logs.png"))

    page.click("#cancel")
    page.wait_for_function(_js_text_includes("#stage", "CANCELED"))
    assert job.stage == "CANCELED"
    logs = page.input_value("#logs textarea")
    assert logs.startswith("passo 0:") and "passo 599:" not in logs
    time.sleep(0.5)
    assert newest_log_line_visible(page)
    # the runs table follows the stage shown above it, without Refresh; cells link to the job and the repo
    page.wait_for_function(_js_text_includes("#runs", "Annullato / canceled"))
    assert page.query_selector(f"#runs a[href$='/jobs/mario/{job.id}']")
    assert page.query_selector("#runs a[href$='/mario/qwen2.5-7b-ita']")
    page.screenshot(path=str(artifacts / "3-canceled.png"), full_page=True)


def test_completed_run_shows_the_newest_log_line_and_offers_its_chat(app_url, page, artifacts):
    url, server = app_url
    from jobs_server import publish_like_the_job

    lines = [f"passo {i}: loss {3 - i / 100:.2f}" for i in range(60)] + ["hf-ita: pushing the adapter"]
    server.queue_scenario(JobScenario(scheduling_s=0.3, log_lines=lines, line_interval_s=0.02,
                                      on_complete=publish_like_the_job(server)))
    page.click("#launch")
    page.wait_for_function(_js_text_includes("#published", "Pubblicato / published"))
    page.wait_for_function("(() => { const t = document.querySelector('#logs textarea'); return t.value.includes('pushing the adapter'); })()")
    time.sleep(0.5)
    page.locator("#logs").scroll_into_view_if_needed()
    assert newest_log_line_visible(page) and in_viewport(page, "#logs textarea")
    page.screenshot(path=str(artifacts / "4-completed.png"))
    page.wait_for_function(_js_text_includes("#runs", "Completato / completed"))

    page.click("#chat-with-it")
    page.wait_for_function("(() => { const e = document.querySelector('#chat-source input'); return !!e && e.offsetParent !== null"
                           " && e.value === 'mario/qwen2.5-7b-ita'; })()")
    page.locator("#chat-source input").click()
    assert page.get_by_role("option", name="mario/qwen2.5-7b-ita").count() == 1  # trained repos are offered
    page.keyboard.press("Escape")
    page.screenshot(path=str(artifacts / "5-chat-with-it.png"))


def test_errors_are_readable_and_on_screen(app_url, page, artifacts):
    url, _ = app_url
    page.goto(url + "/login/huggingface")  # signs in (Gradio's local OAuth mock) and comes back to the page
    page.wait_for_function(_js_text_includes("#who", "signed in as mario"))
    page.fill("#max-steps input", "0")
    page.press("#max-steps input", "Enter")
    page.click("#launch")
    page.wait_for_function(_js_text_includes("#launch-msg", "max_steps = 0"))
    text = assert_readable(page, "#launch-msg")
    assert text.startswith("❌") and "use -1 (epochs)" in text and in_viewport(page, "#launch-msg")
    page.fill("#max-steps input", "-1")
    page.press("#max-steps input", "Enter")
    page.fill("#job-id textarea, #job-id input", "non_un_job!")
    page.click("#cancel")
    try:
        page.wait_for_function(_js_text_includes("#stage", "non_un_job!"), timeout=30_000)
    finally:
        page.screenshot(path=str(artifacts / "6-errors.png"))
    text = assert_readable(page, "#stage")
    assert "hf-ita" not in text and "runs table" in text  # a hint a Space user can follow
    page.screenshot(path=str(artifacts / "6-errors.png"))


def test_chat_tab_streams_a_reply_from_the_embedded_model(app_url, page, artifacts):
    url, _ = app_url
    page.goto(url)
    page.get_by_role("tab", name="Chat").click()
    assert "135M" in page.inner_text("#chat-note") and "demo" in page.inner_text("#chat-note")
    assert "most likely tokens" in page.inner_text("body")  # top_k / top_p say what they do
    page.fill("#max-new-tokens input[type=number]", "24")
    page.press("#max-new-tokens input[type=number]", "Enter")
    page.fill("#chat-input textarea", "Ciao! Come stai oggi?")
    # Record every text the assistant's bubble shows, to see the reply grow (streaming).
    page.evaluate("""() => {
        window.__botTexts = [];
        const box = document.querySelector('#chatbot');
        new MutationObserver(() => {
            const bots = box.querySelectorAll('[data-testid="bot"]');
            if (bots.length) window.__botTexts.push(bots[bots.length - 1].innerText);
        }).observe(box, {subtree: true, childList: true, characterData: true});
    }""")
    started = time.monotonic()
    page.click("#send")
    page.wait_for_function(_js_text_includes("#chat-status", "llama.cpp"))
    page.wait_for_function(_js_text_includes("#chat-status", "completata / done"))
    time.sleep(0.5)
    page.screenshot(path=str(artifacts / "7-chat.png"))
    assert in_viewport(page, "#chat-status") and in_viewport(page, "#chat-input")
    texts = [t.strip() for t in page.evaluate("window.__botTexts") if t.strip()]
    final = page.evaluate("""() => { const b = document.querySelectorAll('#chatbot [data-testid="bot"]');
                                     return b[b.length - 1].innerText.trim(); }""")
    partial = {t for t in texts if t != final and final.startswith(t)}
    assert final and partial, texts  # the bubble showed a prefix of the reply before the whole: it streamed
    assert "Ciao! Come stai oggi?" in page.inner_text("#chatbot")
    assert time.monotonic() - started < 240

    page.fill("#chat-source input", "mario/non_esiste_ancora")
    page.press("#chat-source input", "Enter")
    page.fill("#chat-input textarea", "Ciao")
    page.click("#send")
    page.wait_for_function(_js_text_includes("#chat-status", "❌"))
    text = assert_readable(page, "#chat-status")
    assert "non_esiste_ancora" in text and in_viewport(page, "#chat-status")
    page.screenshot(path=str(artifacts / "8-chat-error.png"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_first_start_without_a_hub_login(page, tmp_path, artifacts):
    """``python space/app.py`` on a machine with no Hub login starts; chat works; sign-in says what it needs."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "SPACE_ID", "SYSTEM")}
    home = tmp_path / "hf-home"
    home.mkdir()
    with JobsHubServer() as server:
        env.update(HF_HOME=str(home), HF_ENDPOINT=server.url, HF_HUB_DISABLE_XET="1", GRADIO_SERVER_PORT=str(port),
                   GRADIO_SERVER_NAME="127.0.0.1", GRADIO_ANALYTICS_ENABLED="False",
                   PYTHONPATH=os.pathsep.join([str(SPACE_DIR.parent), env.get("PYTHONPATH", "")]))
        log = tmp_path / "app.log"
        with log.open("wb") as out:
            proc = subprocess.Popen([sys.executable, str(SPACE_DIR / "app.py")], env=env, stdout=out,
                                    stderr=subprocess.STDOUT, cwd=tmp_path)
        try:
            deadline = time.monotonic() + 120
            while f":{port}" not in log.read_text(errors="replace"):
                assert proc.poll() is None, log.read_text(errors="replace")
                assert time.monotonic() < deadline, log.read_text(errors="replace")
                time.sleep(0.5)
            context = page.context.browser.new_context(viewport=VIEWPORT)  # a new visitor: no cookies
            try:
                page = context.new_page()
                page.set_default_timeout(90_000)
                page.goto(f"http://127.0.0.1:{port}/")
                page.wait_for_function(_js_text_includes("#who", "hf auth login"))
                assert page.get_by_role("button", name="Accedi con Hugging Face / Sign in").is_disabled()
                assert "chat already works" in page.inner_text("#who")
                page.screenshot(path=str(artifacts / "0-no-login.png"))
                page.get_by_role("tab", name="Chat").click()
                page.fill("#max-new-tokens input[type=number]", "8")
                page.press("#max-new-tokens input[type=number]", "Enter")
                page.fill("#chat-input textarea", "Ciao!")
                page.click("#send")
                page.wait_for_function(_js_text_includes("#chat-status", "completata / done"))
                assert page.query_selector_all('#chatbot [data-testid="bot"]')
            finally:
                context.close()
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    assert "Traceback" not in log.read_text(errors="replace")


def _pick(page, dropdown, option) -> None:
    """Choose ``option`` (a name or a pattern) in a Gradio dropdown, as a user does: open it, click the option."""
    dropdown.click()
    page.get_by_role("option", name=option, exact=isinstance(option, str)).click()


def test_rehearsal_launched_from_the_space_completes_and_links_its_repo(app_url, page, artifacts, job_image, tmp_path):
    """A signed-in user launches the embedded model on bundled data, a CPU flavor, 2 steps, no evaluation;
    the local Jobs server really runs the job's command in the image stand-in (it installs the wheel,
    trains, pushes); the page reaches COMPLETED, links the pushed repo and shows the newest log lines."""
    url, server = app_url
    started = time.monotonic()
    server.queue_scenario(job_image.scenario(server.url, tmp_path, scheduling_s=0.1))
    page.goto(url + "/login/huggingface")
    page.wait_for_function(_js_text_includes("#who", "signed in as mario"))
    _pick(page, page.get_by_label("Preset", exact=True), "smollm2-135m-cpu")
    repo = "mario/smollm2-135m-cpu-ita"
    page.wait_for_function(f"""() => {{ const e = document.querySelector('#output-repo textarea, #output-repo input');
        return !!e && e.value === {repo!r}; }}""")  # the preset's own defaults are in: now change them
    _pick(page, page.locator("#flavor input"), re.compile(r"^cpu-basic "))
    assert page.input_value("#flavor input").startswith("cpu-basic ")
    for field, value in ((page.locator("#max-steps input"), "2"), (page.get_by_label("Batch (1–128)", exact=True), "2")):
        field.fill(value)
        field.press("Enter")
    page.locator("#evaluate input[type=checkbox]").uncheck()
    assert page.get_by_label("Dati italiani inclusi (bundled)").is_checked()
    page.screenshot(path=str(artifacts / "9-rehearsal-form.png"), full_page=True)

    page.click("#launch")
    page.wait_for_function(_js_text_includes("#launch-msg", "Job avviato / started"), timeout=300_000)
    job = next(j for j in server.jobs.values() if j.labels.get("hf-ita-repo") == repo.replace("/", "--"))
    assert job.spec["flavor"] == "cpu-basic" and job.spec["secrets"] == {"HF_TOKEN": GRADIO_MOCK_OAUTH_TOKEN}
    from hf_ita_plugin.jobs.client import decode_job_config

    config = decode_job_config(job.spec["environment"])
    assert config.model.name_or_path is None and config.data.train == "bundled"  # embedded model, bundled data
    assert config.training.max_steps == 2 and config.training.per_device_batch_size == 2
    assert not config.evaluation.before_after and config.data.eval is None
    page.wait_for_function("""() => ['COMPLETED', 'ERROR', 'CANCELED'].some(
        s => (document.querySelector('#stage') || {innerText: ''}).innerText.includes(s))""", timeout=1_200_000)
    logs = "\n".join(line for _, line in job.logs)
    assert "COMPLETED" in page.inner_text("#stage"), logs[-4000:]
    job_s = time.monotonic() - started
    assert "Successfully installed hf-ita-plugin-0.1.0" in logs and GRADIO_MOCK_OAUTH_TOKEN not in logs

    # the published repo is linked, at the local Hub, and holds the adapter the job pushed
    page.wait_for_selector(f"#published a[href='{server.url}/{repo}']")
    files = server.files(repo)
    assert {"adapter_config.json", "adapter_model.safetensors", "README.md"} <= set(files), sorted(files)
    # the live log box ends with the job's newest lines (the push) and is scrolled to them
    newest = job.logs[-1][1].strip()
    page.wait_for_function(f"""() => {{ const t = document.querySelector('#logs textarea');
        return !!t && t.value.trimEnd().endsWith({newest!r}); }}""")
    shown = page.input_value("#logs textarea").rstrip().splitlines()
    assert any("pubblicato / published" in line for line in shown[-8:]), shown[-8:]  # the push, on screen
    time.sleep(0.5)
    page.locator("#logs").scroll_into_view_if_needed()
    assert newest_log_line_visible(page) and in_viewport(page, "#logs textarea")
    page.wait_for_function(_js_text_includes("#runs", "Completato / completed"))
    assert page.query_selector(f"#runs a[href='{server.url}/{repo}']")
    page.screenshot(path=str(artifacts / "10-rehearsal-completed.png"))
    print(f"\nrehearsal from the Space: job {job_s:.0f} s, test {time.monotonic() - started:.0f} s")
