// A gorilla/websocket peer for spec/websockets_spec.lua.
//
//   ws_gorilla server ADDR [z]   echo server on /ws (subprotocol "echo"),
//                                commands: "ping-me" (sends ping "srv", then
//                                "got-pong:<data>" when the pong arrives),
//                                "close-me:<code>" (closes with that code)
//   ws_gorilla client URL [z]    runs a checklist against an echo server,
//                                prints "ok <step>" per step, exits 1 on error
// z: offer / accept permessage-deflate.
package main

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/websocket"
)

func fail(format string, a ...interface{}) {
	fmt.Printf("FAIL "+format+"\n", a...)
	os.Exit(1)
}

func payload(n int, text bool) []byte {
	b := make([]byte, 0, n)
	if text {
		// 1-, 2-, 3- and 4-byte sequences, so fragments split code points
		parts := []string{"a", "é", "€", "𝄞", "z"}
		for i := 0; len(b) < n; i++ {
			p := parts[i%len(parts)]
			if len(b)+len(p) > n {
				p = "a"
			}
			b = append(b, p...)
		}
		return b
	}
	for i := 0; i < n; i++ {
		b = append(b, byte(i*7+i/251))
	}
	return b
}

func server(addr string, z bool) {
	up := websocket.Upgrader{EnableCompression: z, Subprotocols: []string{"echo"},
		ReadBufferSize: 4096, WriteBufferSize: 1024,
		CheckOrigin: func(*http.Request) bool { return true }}
	http.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		c.SetReadLimit(64 << 20)
		c.SetPongHandler(func(s string) error {
			return c.WriteMessage(websocket.TextMessage, []byte("got-pong:"+s))
		})
		for {
			t, m, err := c.ReadMessage()
			if err != nil {
				return
			}
			s := string(m)
			if t == websocket.TextMessage && s == "ping-me" {
				c.WriteControl(websocket.PingMessage, []byte("srv"), time.Now().Add(time.Second))
				continue
			}
			if t == websocket.TextMessage && strings.HasPrefix(s, "close-me:") {
				code, _ := strconv.Atoi(s[9:])
				c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, "done"), time.Now().Add(time.Second))
				c.SetReadDeadline(time.Now().Add(2 * time.Second))
				for {
					if _, _, err := c.ReadMessage(); err != nil {
						return
					}
				}
			}
			if t == websocket.TextMessage && s == "ext?" {
				s = "ext:" + r.Header.Get("Sec-WebSocket-Extensions")
				m = []byte(s)
			}
			if err := c.WriteMessage(t, m); err != nil {
				return
			}
		}
	})
	if err := http.ListenAndServe(addr, nil); err != nil {
		fail("%v", err)
	}
}

func client(url string, z bool) {
	d := websocket.Dialer{EnableCompression: z, Subprotocols: []string{"nope", "echo"},
		ReadBufferSize: 4096, WriteBufferSize: 1024, HandshakeTimeout: 5 * time.Second}
	c, resp, err := d.Dial(url, nil)
	if err != nil {
		fail("dial: %v", err)
	}
	if c.Subprotocol() != "echo" {
		fail("subprotocol %q", c.Subprotocol())
	}
	ext := resp.Header.Get("Sec-WebSocket-Extensions")
	if z != strings.Contains(ext, "permessage-deflate") {
		fail("extensions %q", ext)
	}
	fmt.Println("ok handshake", ext)
	c.SetReadLimit(64 << 20)
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	pongs := make(chan string, 4)
	c.SetPongHandler(func(s string) error { pongs <- s; return nil })
	for _, n := range []int{0, 1, 16, 32, 33, 125, 126, 1000, 65535, 65536, 100000, 3<<20 + 7} {
		for _, text := range []bool{true, false} {
			t := websocket.BinaryMessage
			if text {
				t = websocket.TextMessage
			}
			p := payload(n, text)
			if err := c.WriteMessage(t, p); err != nil {
				fail("write %d: %v", n, err)
			}
			rt, m, err := c.ReadMessage()
			if err != nil {
				fail("read %d: %v", n, err)
			}
			if rt != t || !bytes.Equal(m, p) {
				fail("echo %d text=%v: type %d len %d", n, text, rt, len(m))
			}
		}
	}
	fmt.Println("ok echo")
	// client ping with a payload: the pong comes back while reading
	c.WriteControl(websocket.PingMessage, []byte("p1"), time.Now().Add(time.Second))
	c.WriteMessage(websocket.TextMessage, []byte("after-ping"))
	if _, m, err := c.ReadMessage(); err != nil || string(m) != "after-ping" {
		fail("after ping: %v %q", err, m)
	}
	select {
	case p := <-pongs:
		if p != "p1" {
			fail("pong %q", p)
		}
	default:
		fail("no pong")
	}
	fmt.Println("ok ping")
	// server ping: gorilla answers it; the server reports the pong
	c.WriteMessage(websocket.TextMessage, []byte("ping-me"))
	if _, m, err := c.ReadMessage(); err != nil || string(m) != "got-pong:srv" {
		fail("server ping: %v %q", err, m)
	}
	fmt.Println("ok server-ping")
	// close with a code: the server echoes it
	c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(4001, "bye"))
	_, _, err = c.ReadMessage()
	if ce, ok := err.(*websocket.CloseError); !ok || ce.Code != 4001 {
		fail("close echo: %v", err)
	}
	fmt.Println("ok close")
}

func main() {
	if len(os.Args) < 3 {
		fail("usage: ws_gorilla server|client ADDR|URL [z]")
	}
	z := len(os.Args) > 3 && os.Args[3] == "z"
	switch os.Args[1] {
	case "server":
		server(os.Args[2], z)
	case "client":
		client(os.Args[2], z)
	default:
		fail("unknown mode %s", os.Args[1])
	}
}
