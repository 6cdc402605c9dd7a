// The Go anchor of bench/urlsign.lua: the seed's urlsign design written
// with the standard library only (url.Parse, Query().Encode(), hmac.New
// with SHA-256, hex, hmac.Equal), timed on one core (GOMAXPROCS=1).
//
//	go run bench/go/urlsign/main.go [seconds per case]   -> "sign <url> <ns/op>" lines
//	go run bench/go/urlsign/main.go -sign KEY EXP URL... -> each signed URL, one a line
//	                                                        (spec/urlsign_go_spec.lua)
//
// Self-written for lowbit's benchmarks; it is not the seed's code.
package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"time"
)

var (
	errExpired    = errors.New("urlsign: URL expired")
	errInvalidSig = errors.New("urlsign: invalid signature")
	errMissing    = errors.New("urlsign: missing exp or sig parameter")
)

type signer struct {
	key []byte
	ttl time.Duration
	now func() time.Time
}

func (s *signer) mac(host, path, exp, canonical string) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(host + ":" + path + ":" + exp + ":" + canonical))
	return m.Sum(nil)
}

func (s *signer) signAt(raw, exp string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	q := u.Query()
	q.Del("exp")
	q.Del("sig")
	sig := hex.EncodeToString(s.mac(u.Host, u.Path, exp, q.Encode()))
	q.Set("exp", exp)
	q.Set("sig", sig)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

func (s *signer) sign(raw string) (string, error) {
	exp := strconv.FormatInt(s.now().Add(s.ttl).Unix(), 10)
	return s.signAt(raw, exp)
}

func (s *signer) verify(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	q := u.Query()
	exp, sig := q.Get("exp"), q.Get("sig")
	if exp == "" || sig == "" {
		return errMissing
	}
	q.Del("exp")
	q.Del("sig")
	got, err := hex.DecodeString(sig)
	if err != nil || !hmac.Equal(got, s.mac(u.Host, u.Path, exp, q.Encode())) {
		return errInvalidSig
	}
	e, err := strconv.ParseInt(exp, 10, 64)
	if err != nil {
		return errInvalidSig
	}
	if s.now().Unix() > e {
		return errExpired
	}
	return nil
}

// nsPerOp runs fn in growing batches until one takes at least d.
func nsPerOp(d time.Duration, fn func(n int)) float64 {
	fn(100)
	n := 100
	for {
		t0 := time.Now()
		fn(n)
		dt := time.Since(t0)
		if dt >= d {
			return float64(dt.Nanoseconds()) / float64(n)
		}
		if dt < d/8 {
			n *= 8
		} else {
			n *= 2
		}
	}
}

func main() {
	runtime.GOMAXPROCS(1)
	if len(os.Args) >= 5 && os.Args[1] == "-sign" {
		s := &signer{key: []byte(os.Args[2]), now: time.Now}
		for _, raw := range os.Args[4:] {
			out, err := s.signAt(raw, os.Args[3])
			if err != nil {
				out = "error: " + err.Error()
			}
			fmt.Println(out)
		}
		return
	}
	secs := 0.5
	if len(os.Args) > 1 {
		if v, err := strconv.ParseFloat(os.Args[1], 64); err == nil {
			secs = v
		}
	}
	d := time.Duration(secs * float64(time.Second))
	s := &signer{key: []byte("a 32-byte secret key for bench!!"), ttl: time.Hour, now: time.Now}
	for _, raw := range []string{
		"https://cdn.example.com/files/report.pdf",
		"https://cdn.example.com:8443/files/2024/q3/report.pdf?format=pdf&user=12345&lang=en-GB&download=1",
	} {
		signed, err := s.sign(raw)
		if err != nil || s.verify(signed) != nil {
			panic("self-check failed")
		}
		sign := nsPerOp(d, func(n int) {
			for i := 0; i < n; i++ {
				s.sign(raw)
			}
		})
		verify := nsPerOp(d, func(n int) {
			for i := 0; i < n; i++ {
				if s.verify(signed) != nil {
					panic("verify failed")
				}
			}
		})
		fmt.Printf("sign %s %.0f\n", raw, sign)
		fmt.Printf("verify %s %.0f\n", raw, verify)
	}
}
