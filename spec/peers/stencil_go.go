// stencil_go: renders template cases through Go's html/template, for
// spec/stencil_spec.lua to compare stencil's bytes with.
//
// Input (stdin), per case: a line "KIND TLEN VLEN", then TLEN bytes of
// template and VLEN bytes of value. KIND: string, nil, json (the value is
// JSON: numbers, booleans, objects, arrays), html, url, js, css, attr
// (trusted values). Output, per case: "O LEN\n" and the rendered bytes, or
// "E LEN\n" and the parse or execution error.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"os"
	"strings"
)

func value(kind string, v []byte) any {
	switch kind {
	case "string":
		return string(v)
	case "nil":
		return nil
	case "json":
		var x any
		if err := json.Unmarshal(v, &x); err != nil {
			panic(err)
		}
		return x
	case "html":
		return template.HTML(v)
	case "url":
		return template.URL(v)
	case "js":
		return template.JS(v)
	case "css":
		return template.CSS(v)
	case "attr":
		return template.HTMLAttr(v)
	}
	panic("unknown kind " + kind)
}

func main() {
	r := bufio.NewReader(os.Stdin)
	w := bufio.NewWriter(os.Stdout)
	defer w.Flush()
	for {
		var kind string
		var tl, vl int
		if _, err := fmt.Fscanf(r, "%s %d %d\n", &kind, &tl, &vl); err != nil {
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return
			}
			panic(err)
		}
		t := make([]byte, tl)
		v := make([]byte, vl)
		if _, err := io.ReadFull(r, t); err != nil {
			panic(err)
		}
		if _, err := io.ReadFull(r, v); err != nil {
			panic(err)
		}
		var out strings.Builder
		tmpl, err := template.New("case").Parse(string(t))
		if err == nil {
			err = tmpl.Execute(&out, value(kind, v))
		}
		if err != nil {
			msg := err.Error()
			fmt.Fprintf(w, "E %d\n%s", len(msg), msg)
		} else {
			fmt.Fprintf(w, "O %d\n%s", out.Len(), out.String())
		}
	}
}
