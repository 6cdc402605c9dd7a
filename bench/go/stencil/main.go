// The Go anchor of bench/stencil.lua: the same benchmark page (an <h1> and
// a 100-row table, three escaped fields a row) rendered with Go's
// html/template on one core. Prints "go_us_per_render N", "go_parse_us N" and "go_escape_us N".
//   go run bench/go/stencil/main.go [renders]
package main

import (
	"fmt"
	"html/template"
	"io"
	"os"
	"runtime"
	"strconv"
	"time"
)

const page = `<h1>{{.Title}}</h1>
<table>
{{range .Rows}}<tr><td>{{.Name}}</td><td>{{.Email}}</td><td>{{.Note}}</td></tr>
{{end}}</table>
`

type row struct{ Name, Email, Note string }

func main() {
	runtime.GOMAXPROCS(1)
	n := 20000
	if len(os.Args) > 1 {
		n, _ = strconv.Atoi(os.Args[1])
	}
	rows := make([]row, 100)
	for i := range rows {
		note := "Regular customer since 2019"
		if i%10 == 0 {
			note = "<b>Tom & Jerry's</b> \"special\" order"
		}
		rows[i] = row{Name: "Customer number " + strconv.Itoa(i+1), Email: "customer" + strconv.Itoa(i+1) + "@mail.example.com", Note: note}
	}
	data := struct {
		Title string
		Rows  []row
	}{"Benchmark <page>", rows}

	// Parse, and the first Execute (which runs the escape analysis).
	const parses = 1000
	var parse, first time.Duration
	for i := 0; i < parses; i++ {
		t0 := time.Now()
		t := template.Must(template.New("p").Parse(page))
		t1 := time.Now()
		if err := t.Execute(io.Discard, data); err != nil {
			panic(err)
		}
		parse += t1.Sub(t0)
		first += time.Since(t1)
	}

	t := template.Must(template.New("p").Parse(page))
	var sink countWriter
	t.Execute(&sink, data)
	bytes := sink.n
	t0 := time.Now()
	for i := 0; i < n; i++ {
		t.Execute(io.Discard, data)
	}
	el := time.Since(t0)
	us := float64(el.Microseconds()) / float64(n)
	fmt.Printf("go_bytes %d\n", bytes)
	fmt.Printf("go_us_per_render %.2f\n", us)
	// The escape analysis: the first Execute less a steady-state render.
	esc := float64(first.Microseconds())/parses - us
	if esc < 0 {
		esc = 0
	}
	fmt.Printf("go_parse_us %.2f\n", float64(parse.Microseconds())/parses)
	fmt.Printf("go_escape_us %.2f\n", esc)
}

type countWriter struct{ n int }

func (c *countWriter) Write(p []byte) (int, error) { c.n += len(p); return len(p), nil }
