// ws_mem gorilla anchor: the same server as bench/ws_mem/server.lua with
// gorilla/websocket's defaults (4 KiB buffers, compression on: no context
// takeover, pooled flate writers), a full GC every 0.3 s, after which it
// prints what it holds (heap and stacks in use).
//   gorilla ADDR echo|read
package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/gorilla/websocket"
)

func main() {
	mode := os.Args[2]
	up := websocket.Upgrader{EnableCompression: true}
	http.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		c.SetReadLimit(16 << 20)
		for {
			t, rd, err := c.NextReader()
			if err != nil {
				return
			}
			m, err := io.ReadAll(rd)
			if err != nil {
				return
			}
			if mode == "read" {
				continue
			}
			if err := c.WriteMessage(t, m); err != nil {
				return
			}
		}
	})
	go func() {
		for {
			time.Sleep(300 * time.Millisecond)
			runtime.GC()
			debug.FreeOSMemory()
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			fmt.Fprintf(os.Stderr, "held %d KiB (heap %d, stacks %d)\n", (m.HeapInuse+m.StackInuse)>>10,
				m.HeapInuse>>10, m.StackInuse>>10)
		}
	}()
	http.ListenAndServe(os.Args[1], nil)
}
