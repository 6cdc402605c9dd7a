// workers_load: the load of the `lowbit -w N` specs (scale.md §2.5). C
// clients, a new TCP connection per request, N requests in all; counts
// responses by the pid in the body, and resets, empty replies (EOF before
// any byte) and other failures separately. With -at K -pid P -sig S it
// sends signal S to process P once K responses have arrived, and reports
// how long until a pid not seen before the signal answered.
// With -stopkill, the signal is SIGSTOP, then (while the process is
// stopped) the connections it holds and those queued on the listening
// sockets of -port are counted with ss, then SIGKILL: a killed process
// takes the connections it had accepted with it, and the spec checks that
// no other connection is lost.
// Prints one JSON object.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

type result struct {
	OK      int            `json:"ok"`
	Reset   int            `json:"reset"`
	Empty   int            `json:"empty"`
	Other   int            `json:"other"`
	ByPid   map[string]int `json:"by_pid"`
	NewPid  float64        `json:"new_pid_ms"` // -1: none, or no signal
	Signal  bool           `json:"signalled"`
	Samples []string       `json:"samples"`
	Held    int            `json:"held"`
	Unread  int            `json:"unread"` // held with request bytes not yet read (Recv-Q > 0)
	Idle    int            `json:"idle"`   // held with no byte received
	Queued  int            `json:"queued"`
}

var pidRe = regexp.MustCompile(`pid=(\d+)`)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "server address")
	n := flag.Int("n", 3000, "requests in all")
	c := flag.Int("c", 16, "clients")
	path := flag.String("path", "/", "request path")
	at := flag.Int("at", -1, "signal after this many responses")
	pid := flag.Int("pid", 0, "process to signal")
	sig := flag.Int("sig", 0, "signal number")
	stopkill := flag.Bool("stopkill", false, "SIGSTOP, count, SIGKILL")
	flag.Parse()

	var mu sync.Mutex
	res := result{ByPid: map[string]int{}, NewPid: -1, Samples: []string{}}
	before := map[string]bool{}
	var sigAt time.Time
	next, done := 0, 0
	sample := func(s string) {
		if len(res.Samples) < 5 {
			res.Samples = append(res.Samples, s)
		}
	}
	var wg sync.WaitGroup
	for i := 0; i < *c; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				if next >= *n {
					mu.Unlock()
					return
				}
				next++
				mu.Unlock()
				body, err := get(*addr, *path)
				mu.Lock()
				switch {
				case err == nil && bytes.HasPrefix(body, []byte("HTTP/1.1 200 ")) && pidRe.Match(body):
					p := string(pidRe.FindSubmatch(body)[1])
					res.OK++
					res.ByPid[p]++
					if res.Signal {
						if !before[p] && res.NewPid < 0 {
							res.NewPid = float64(time.Since(sigAt).Microseconds()) / 1000
						}
					} else {
						before[p] = true
					}
				case errors.Is(err, syscall.ECONNRESET):
					res.Reset++
					sample(err.Error())
				case err == nil && len(body) == 0:
					res.Empty++
				default:
					res.Other++
					if err != nil {
						sample(err.Error())
					} else {
						sample(fmt.Sprintf("%q", body))
					}
				}
				done++
				if *at >= 0 && done == *at && !res.Signal {
					res.Signal = true
					sigAt = time.Now()
					if *stopkill {
						mu.Unlock()
						held, unread, idle, queued := stopKill(*pid, *addr)
						mu.Lock()
						res.Held, res.Unread, res.Idle, res.Queued = held, unread, idle, queued
						sigAt = time.Now()
					} else if e := syscall.Kill(*pid, syscall.Signal(*sig)); e != nil {
						sample("kill: " + e.Error())
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	out, _ := json.Marshal(res)
	os.Stdout.Write(append(out, '\n'))
}

// One request on a new connection; the whole reply.
func get(addr, path string) ([]byte, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, "GET "+path+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); err != nil {
		return nil, err
	}
	return io.ReadAll(conn)
}

// SIGSTOP pid, let the load queue up for 100 ms, count the TCP connections
// pid holds (accepted, or being accepted: how many have request bytes it
// has not read, how many have received nothing) and those queued on the
// listening sockets of addr's port, then SIGKILL pid.
func stopKill(pid int, addr string) (held, unread, idle, queued int) {
	syscall.Kill(pid, syscall.SIGSTOP)
	time.Sleep(100 * time.Millisecond)
	_, port, _ := net.SplitHostPort(addr)
	// (-i: each socket's line is followed by its tcp_info line, which
	// has bytes_received:N once anything arrived)
	out, _ := exec.Command("ss", "-Htanpi").Output()
	tag := "pid=" + strconv.Itoa(pid) + ","
	lines := strings.Split(string(out), "\n")
	for i, l := range lines {
		if strings.Contains(l, tag) && !strings.HasPrefix(l, "LISTEN") {
			held++
			if f := strings.Fields(l); len(f) > 1 && f[1] != "0" {
				unread++
			}
			if i+1 >= len(lines) || !strings.Contains(lines[i+1], "bytes_received:") {
				idle++
			}
		}
	}
	out, _ = exec.Command("ss", "-Hltn", "sport = :"+port).Output()
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) > 1 {
			q, _ := strconv.Atoi(f[1])
			queued += q
		}
	}
	syscall.Kill(pid, syscall.SIGKILL)
	return held, unread, idle, queued
}
