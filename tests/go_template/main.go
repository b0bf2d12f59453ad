// Command go_template renders an Ollama TEMPLATE with Go's text/template, the engine Ollama uses.
//
// Usage: go_template TEMPLATE_FILE < input.json
// input.json: {"Messages": [{"role": ..., "content": ...}], "System": "", "Prompt": "", "Response": ""}
// (Ollama's template variables .Messages, .System, .Prompt, .Response). The rendering goes to stdout.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"text/template"
)

// Message mirrors the fields of Ollama's api.Message that templates read.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// Values mirrors the variables Ollama passes to a TEMPLATE.
type Values struct {
	Messages []Message
	System   string
	Prompt   string
	Response string
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: go_template TEMPLATE_FILE < input.json")
		os.Exit(2)
	}
	text, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	tmpl, err := template.New("ollama").Option("missingkey=zero").Parse(string(text))
	if err != nil {
		fmt.Fprintln(os.Stderr, "parse:", err)
		os.Exit(1)
	}
	var values Values
	if err := json.NewDecoder(os.Stdin).Decode(&values); err != nil {
		fmt.Fprintln(os.Stderr, "input:", err)
		os.Exit(1)
	}
	if err := tmpl.Execute(os.Stdout, values); err != nil {
		fmt.Fprintln(os.Stderr, "execute:", err)
		os.Exit(1)
	}
}
