// The Go net/http counterpart of server.lua for bench/bigwrite.sh:
// GET /?mb=N answers N MB from one Write of a slice made for the request;
// GET /pre answers the 100 MB slice made at start (with a
// second argument); GET /gc runs the collector and returns freed memory to the OS.
package main

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"time"
)

func main() {
	var pre []byte
	if len(os.Args) > 2 {
		pre = bytes.Repeat([]byte("0123456789abcdef"), 100*65536)
		runtime.GC()
	}
	srv := &http.Server{
		Addr:              os.Args[1],
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/gc" {
				runtime.GC()
				debug.FreeOSMemory()
				fmt.Fprintln(w, "gc")
				return
			}
			if r.URL.Path == "/pre" {
				w.Header().Set("Content-Length", strconv.Itoa(len(pre)))
				w.Write(pre)
				return
			}
			mb, _ := strconv.Atoi(r.URL.Query().Get("mb"))
			if mb == 0 {
				mb = 1
			}
			s := bytes.Repeat([]byte("0123456789abcdef"), mb*65536)
			w.Header().Set("Content-Length", strconv.Itoa(len(s)))
			w.Write(s)
		}),
	}
	srv.ListenAndServe()
}
