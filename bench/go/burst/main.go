// A burst of small uploads from a few keep-alive clients, for `make bench`: the same
// requests against Ferry and against the seed server, sent as fast as each answers.
// Prints "sent=N accepted=N seconds=S" when every request has been answered.
package main

import (
	"bytes"
	"crypto/rand"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	target := flag.String("url", "", "upload URL")
	files := flag.Int("files", 1000, "uploads in all")
	clients := flag.Int("clients", 8, "keep-alive connections")
	size := flag.Int("size", 4096, "bytes per upload")
	container := flag.String("container", "bench", "X-Container-Name")
	directory := flag.String("dir", "/tmp/burst", "destination directory in the container")
	flag.Parse()
	body := make([]byte, *size)
	rand.Read(body)
	transport := &http.Transport{MaxIdleConnsPerHost: *clients, MaxConnsPerHost: *clients}
	client := &http.Client{Transport: transport}
	var next, accepted atomic.Int64
	var failures sync.Map
	var group sync.WaitGroup
	started := time.Now()
	for c := 0; c < *clients; c++ {
		group.Add(1)
		go func() {
			defer group.Done()
			for {
				index := next.Add(1) - 1
				if index >= int64(*files) {
					return
				}
				request, _ := http.NewRequest(http.MethodPost, *target, bytes.NewReader(body))
				request.Header.Set("X-Container-Name", *container)
				request.Header.Set("X-File-Path", fmt.Sprintf("%s/file-%d", *directory, index))
				request.Header.Set("X-Host-Path", fmt.Sprintf("file-%d", index))
				request.Header.Set("X-Create-Dirs", "true")
				response, err := client.Do(request)
				if err != nil {
					failures.Store(index, err.Error())
					continue
				}
				io.Copy(io.Discard, response.Body)
				response.Body.Close()
				if response.StatusCode == http.StatusAccepted {
					accepted.Add(1)
				} else {
					failures.Store(index, response.Status)
				}
			}
		}()
	}
	group.Wait()
	seconds := time.Since(started).Seconds()
	failures.Range(func(key, value any) bool {
		fmt.Fprintf(os.Stderr, "upload %v: %v\n", key, value)
		return false
	})
	fmt.Printf("sent=%d accepted=%d seconds=%.3f\n", *files, accepted.Load(), seconds)
}
