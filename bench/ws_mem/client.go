// ws_mem client: opens -c WebSocket connections, sends one -s byte message
// on each (compressed with permessage-deflate when -z asks for it and the
// server agrees), reads the echo when -echo, then keeps every connection
// open and idle. Prints "ready" once all are idle and waits for stdin to
// close. The handshake and frames are written by hand so that the offer can
// ask for context takeover, which gorilla's dialer never does.
//   -z ""     no permessage-deflate offer
//   -z nct    permessage-deflate; server_no_context_takeover; client_no_context_takeover
//   -z ctx    permessage-deflate (context takeover both ways)
package main

import (
	"bufio"
	"bytes"
	"compress/flate"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	mrand "math/rand"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
)

func payload(size int, text bool) []byte {
	b := make([]byte, size)
	if text {
		words := []string{"alpha", "beta", "gamma", "delta", "\"id\":", "\"name\":", "{", "}", "1234", "true"}
		var s bytes.Buffer
		for s.Len() < size {
			s.WriteString(words[mrand.Intn(len(words))])
			s.WriteByte(' ')
		}
		copy(b, s.Bytes())
		return b
	}
	mrand.Read(b)
	return b
}

func frame(op byte, rsv1 bool, p []byte) []byte {
	var h bytes.Buffer
	b0 := 0x80 | op
	if rsv1 {
		b0 |= 0x40
	}
	h.WriteByte(b0)
	n := len(p)
	switch {
	case n < 126:
		h.WriteByte(0x80 | byte(n))
	case n < 65536:
		h.WriteByte(0x80 | 126)
		binary.Write(&h, binary.BigEndian, uint16(n))
	default:
		h.WriteByte(0x80 | 127)
		binary.Write(&h, binary.BigEndian, uint64(n))
	}
	var key [4]byte
	rand.Read(key[:])
	h.Write(key[:])
	out := make([]byte, h.Len()+n)
	copy(out, h.Bytes())
	m := out[h.Len():]
	for i := range p {
		m[i] = p[i] ^ key[i&3]
	}
	return out
}

// readMessage reads frames up to one with FIN (control frames skipped).
func readMessage(br *bufio.Reader) error {
	for {
		var hd [2]byte
		if _, err := io.ReadFull(br, hd[:]); err != nil {
			return err
		}
		n := int64(hd[1] & 0x7f)
		if n == 126 {
			var x uint16
			if err := binary.Read(br, binary.BigEndian, &x); err != nil {
				return err
			}
			n = int64(x)
		} else if n == 127 {
			var x uint64
			if err := binary.Read(br, binary.BigEndian, &x); err != nil {
				return err
			}
			n = int64(x)
		}
		if _, err := io.CopyN(io.Discard, br, n); err != nil {
			return err
		}
		op := hd[0] & 0x0f
		if op < 8 && hd[0]&0x80 != 0 {
			return nil
		}
	}
}

func main() {
	addr := flag.String("addr", "127.0.0.1:18120", "server host:port")
	path := flag.String("path", "/ws", "path")
	conns := flag.Int("c", 10, "connections")
	size := flag.Int("s", 15<<20, "message size")
	z := flag.String("z", "", "\"\", nct or ctx")
	echo := flag.Bool("echo", true, "read the echo")
	text := flag.Bool("text", false, "text-like (compressible) payload")
	flag.Parse()
	msg := payload(*size, *text)
	var mu sync.Mutex
	var held []net.Conn
	var wg sync.WaitGroup
	agreed := 0
	for i := 0; i < *conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", *addr)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			var k [16]byte
			rand.Read(k[:])
			ext := ""
			switch *z {
			case "nct":
				ext = "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover\r\n"
			case "ctx":
				ext = "Sec-WebSocket-Extensions: permessage-deflate\r\n"
			}
			fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
				"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s\r\n", *path, *addr,
				base64.StdEncoding.EncodeToString(k[:]), ext)
			br := bufio.NewReaderSize(c, 1<<16)
			resp, err := http.ReadResponse(br, nil)
			if err != nil || resp.StatusCode != 101 {
				fmt.Fprintln(os.Stderr, "handshake failed", err)
				os.Exit(1)
			}
			compressed := strings.Contains(resp.Header.Get("Sec-WebSocket-Extensions"), "permessage-deflate")
			p := msg
			if compressed {
				var zb bytes.Buffer
				fw, _ := flate.NewWriter(&zb, 1)
				fw.Write(msg)
				fw.Flush()
				p = zb.Bytes()[:zb.Len()-4]
			}
			if _, err := c.Write(frame(2, compressed, p)); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			if *echo {
				if err := readMessage(br); err != nil {
					fmt.Fprintln(os.Stderr, "echo:", err)
					os.Exit(1)
				}
			}
			mu.Lock()
			held = append(held, c)
			if compressed {
				agreed++
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	fmt.Printf("ready %d conns, %d with permessage-deflate\n", len(held), agreed)
	io.Copy(io.Discard, os.Stdin)
}
