// A Go net/http server for the HTTP client specs: /up answers 413 at once
// without reading the request body (Go's server then discards at most
// 256 KiB of it and closes), /ok answers "ok". Prints its address, then
// serves until killed. With "client URL" instead, Go's own client POSTs
// 32 MiB to URL and prints "STATUS BODY" or "error: ..." (what the lowbit
// client is compared with).
package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
)

func main() {
	if len(os.Args) == 3 && os.Args[1] == "client" {
		resp, err := http.Post(os.Args[2], "application/octet-stream", bytes.NewReader(make([]byte, 32<<20)))
		if err != nil {
			fmt.Println("error:", err)
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("%d %s\n", resp.StatusCode, b)
		return
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	fmt.Println(ln.Addr().String())
	mux := http.NewServeMux()
	mux.HandleFunc("/up", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		io.WriteString(w, "too big")
	})
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	http.Serve(ln, mux)
}
