"""The Space in a real browser: Playwright drives Debian's Chromium (headless) through Train and Chat.

Needs ``pip install playwright`` and ``apt-get install -y chromium`` (never ``playwright install``:
Debian's browser is used through ``executable_path``). Screenshots are kept as test artifacts in
``$HF_ITA_ARTIFACTS_DIR`` or a pytest temporary directory (its path is printed).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from jobs_server import GRADIO_MOCK_OAUTH_TOKEN, JobScenario, JobsHubServer, point_hub_client_at
from test_space import load_space_module

CHROMIUM = Path("/usr/bin/chromium")
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
        page = browser.new_page(viewport={"width": 1280, "height": 1500})
        page.set_default_timeout(90_000)
        yield page
        browser.close()


def _js_text_includes(selector: str, text: str, prop: str = "innerText") -> str:
    return f"(() => {{ const e = document.querySelector({selector!r}); return !!e && e.{prop}.includes({text!r}); }})()"


def test_train_tab_sign_in_launch_running_logs_cancel(app_url, page, artifacts):
    url, server = app_url
    server.queue_scenario(JobScenario(scheduling_s=1.0, log_lines=[f"passo {i}: loss {3 - i / 200:.3f}" for i in range(600)],
                                      line_interval_s=0.1))
    page.goto(url)
    page.get_by_role("button", name="Accedi con Hugging Face / Sign in").click()  # Gradio's local OAuth mock
    page.wait_for_function(_js_text_includes("#who", "signed in as mario"))
    assert page.input_value("#output-repo textarea, #output-repo input") == "mario/qwen2.5-7b-ita"
    page.screenshot(path=str(artifacts / "1-signed-in.png"), full_page=True)

    page.click("#launch")
    page.wait_for_function(_js_text_includes("#launch-msg", "Job avviato / started"))
    page.wait_for_function(_js_text_includes("#stage", "RUNNING"))
    page.wait_for_function("(() => { const t = document.querySelector('#logs textarea'); return !!t && t.value.includes('passo 5:'); })()")
    (job,) = server.jobs.values()
    assert page.input_value("#job-id textarea, #job-id input") == job.id
    assert job.spec["labels"]["hf-ita-via"] == "space" and job.spec["secrets"] == {"HF_TOKEN": GRADIO_MOCK_OAUTH_TOKEN}
    page.screenshot(path=str(artifacts / "2-running-logs.png"), full_page=True)

    page.click("#cancel")
    page.wait_for_function(_js_text_includes("#stage", "CANCELED"))
    assert job.stage == "CANCELED"
    logs = page.input_value("#logs textarea")
    assert logs.startswith("passo 0:") and "passo 599:" not in logs
    page.click("#refresh-runs")
    page.wait_for_function(_js_text_includes("#runs", job.id))
    page.screenshot(path=str(artifacts / "3-canceled.png"), full_page=True)


def test_chat_tab_streams_a_reply_from_the_embedded_model(app_url, page, artifacts):
    url, _ = app_url
    if not page.url.startswith(url):
        page.goto(url)
    page.get_by_role("tab", name="Chat").click()
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
    texts = [t.strip() for t in page.evaluate("window.__botTexts") if t.strip()]
    final = page.evaluate("""() => { const b = document.querySelectorAll('#chatbot [data-testid="bot"]');
                                     return b[b.length - 1].innerText.trim(); }""")
    page.screenshot(path=str(artifacts / "4-chat.png"), full_page=True)
    partial = {t for t in texts if t != final and final.startswith(t)}
    assert final and partial, texts  # the bubble showed a prefix of the reply before the whole: it streamed
    assert "Ciao! Come stai oggi?" in page.inner_text("#chatbot")
    assert time.monotonic() - started < 240
