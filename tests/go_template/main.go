// Command go_template renders an Ollama TEMPLATE with Go's text/template, the engine Ollama uses, the way
// Ollama's template package does (own code, written from reading ollama/template/template.go):
// missingkey=zero, the same function names with the same behaviour (json, currentDate, yesterdayDate,
// toTypeScriptType), consecutive messages of one role merged as Ollama's collate does, and the values
// passed as a map (.System, .Messages, .Tools, .Response, .Think, .ThinkLevel, .IsThinkSet).
//
// Usage: go_template [-now 2006-01-02T15:04:05] TEMPLATE_FILE < input.json
// input.json: {"Messages": [{"role": ..., "content": ...}]}. -now fixes the clock that currentDate reads
// (tests); without it the clock is the machine's, as in Ollama. The rendering goes to stdout.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"text/template"
	"text/template/parse"
	"time"
)

// Message mirrors the api.Message fields Ollama hands to templates (its templateMessage).
type Message struct {
	Role       string `json:"role"`
	Content    string `json:"content"`
	Thinking   string `json:"thinking"`
	Images     []string
	ToolCalls  []any
	ToolName   string `json:"tool_name"`
	ToolCallID string `json:"tool_call_id"`
}

// Input is the request: the chat messages (the Modelfile SYSTEM already prepended by the caller).
type Input struct {
	Messages []Message `json:"messages"`
	Think    bool      `json:"think"`
}

func funcs(now func() time.Time) template.FuncMap {
	return template.FuncMap{
		"json": func(v any) string {
			b, _ := json.Marshal(v)
			return string(b)
		},
		// Ollama ignores the format argument: always YYYY-MM-DD.
		"currentDate":   func(args ...string) string { return now().Format("2006-01-02") },
		"yesterdayDate": func(args ...string) string { return now().AddDate(0, 0, -1).Format("2006-01-02") },
		// Ollama converts its api.ToolProperty; any other value is "any" (no tools in these tests).
		"toTypeScriptType": func(v any) string { return "any" },
	}
}

// identifiers lists the field and variable names of a node as Ollama's template.Identifiers does, failing
// where Ollama's parser fails (a {{ template }} call without an argument).
func identifiers(n parse.Node) ([]string, error) {
	var names []string
	add := func(ns ...parse.Node) error {
		for _, c := range ns {
			if c == nil {
				continue
			}
			got, err := identifiers(c)
			if err != nil {
				return err
			}
			names = append(names, got...)
		}
		return nil
	}
	branch := func(b *parse.BranchNode) error {
		if b.ElseList != nil {
			return add(b.Pipe, b.List, b.ElseList)
		}
		return add(b.Pipe, b.List)
	}
	var err error
	switch n := n.(type) {
	case *parse.ListNode:
		for _, c := range n.Nodes {
			if err = add(c); err != nil {
				break
			}
		}
	case *parse.TemplateNode:
		if n.Pipe == nil {
			return nil, fmt.Errorf("undefined template specified")
		}
		err = add(n.Pipe)
	case *parse.ActionNode:
		err = add(n.Pipe)
	case *parse.IfNode:
		err = branch(&n.BranchNode)
	case *parse.RangeNode:
		err = branch(&n.BranchNode)
	case *parse.WithNode:
		err = branch(&n.BranchNode)
	case *parse.PipeNode:
		for _, c := range n.Cmds {
			if err = add(c.Args...); err != nil {
				break
			}
		}
	case *parse.FieldNode:
		names = n.Ident
	case *parse.VariableNode:
		names = n.Ident
	}
	return names, err
}

// usesMessages tells whether Ollama renders the template once with .Messages (else it falls back to its
// legacy per-turn .Prompt/.Response rendering, which this program does not reproduce).
func usesMessages(tmpl *template.Template) (bool, error) {
	for _, t := range tmpl.Templates() {
		if t.Tree == nil {
			continue
		}
		for _, n := range t.Root.Nodes {
			names, err := identifiers(n)
			if err != nil {
				return false, err
			}
			for _, name := range names {
				if strings.ToLower(name) == "messages" {
					return true, nil
				}
			}
		}
	}
	return false, nil
}

// collate joins the system messages and merges consecutive messages of one role, except tool messages.
func collate(msgs []Message) (string, []*Message) {
	var system []string
	var collated []*Message
	for i := range msgs {
		if msgs[i].Role == "system" {
			system = append(system, msgs[i].Content)
		}
		if len(collated) > 0 && collated[len(collated)-1].Role == msgs[i].Role && msgs[i].Role != "tool" {
			collated[len(collated)-1].Content += "\n\n" + msgs[i].Content
		} else {
			collated = append(collated, &msgs[i])
		}
	}
	return strings.Join(system, "\n\n"), collated
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(1)
}

func main() {
	fixed := flag.String("now", "", "fixed local time for currentDate, 2006-01-02T15:04:05")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: go_template [-now TIME] TEMPLATE_FILE < input.json")
		os.Exit(2)
	}
	now := time.Now
	if *fixed != "" {
		t, err := time.ParseInLocation("2006-01-02T15:04:05", *fixed, time.Local)
		if err != nil {
			fail("-now: %v", err)
		}
		now = func() time.Time { return t }
	}
	text, err := os.ReadFile(flag.Arg(0))
	if err != nil {
		fail("%v", err)
	}
	tmpl, err := template.New("").Option("missingkey=zero").Funcs(funcs(now)).Parse(string(text))
	if err != nil {
		fail("parse: %v", err)
	}
	if ok, err := usesMessages(tmpl); err != nil || !ok {
		fail("ollama: the template must read .Messages (%v)", err)
	}
	var in Input
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		fail("input: %v", err)
	}
	system, messages := collate(in.Messages)
	values := map[string]any{
		"System": system, "Messages": messages, "Tools": nil, "Response": "",
		"Think": in.Think, "ThinkLevel": "", "IsThinkSet": false,
	}
	if err := tmpl.Execute(os.Stdout, values); err != nil {
		fail("execute: %v", err)
	}
}
