// The seed article's upload handler, task queue and push worker, completed to run: the
// peer a user would write or pick instead of Ferry, measured by `make bench` in the same
// run. Kept as the article has it (net/http, io.Copy to a temp file without a sync, an
// in-memory channel of 100, workers running one `incus file push` per file, retries);
// what the article leaves out is filled in the plainest way. GET /delivered tells the
// benchmark how many pushes have succeeded.
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"
)

type uploadTask struct {
	hostTempFilePath         string
	containerName            string
	hostFilename             string
	containerDestinationPath string
}

const maxRetries = 3
const retryDelay = time.Second

var (
	uploadTempDir string
	incusCommand  string
	taskQueue     = make(chan uploadTask, 100)
	delivered     atomic.Int64
	failed        atomic.Int64
)

func uploadHandler(wr http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost {
		http.Error(wr, "POST method required.", http.StatusMethodNotAllowed)
		return
	}
	originalFilePath := req.Header.Get("X-File-Path")
	originalFilename := filepath.Base(req.Header.Get("X-Host-Path"))
	containerName := req.Header.Get("X-Container-Name")
	if originalFilePath == "" || containerName == "" {
		http.Error(wr, "Missing X-File-Path or X-Container-Name header.", http.StatusBadRequest)
		return
	}
	cleanContainerDestPath := filepath.Clean(originalFilePath)
	if !filepath.IsAbs(cleanContainerDestPath) {
		http.Error(wr, "File path must be absolute.", http.StatusBadRequest)
		return
	}
	tempFileName := fmt.Sprintf("%d-%s", time.Now().UnixNano(), filepath.Base(originalFilePath))
	hostTempFilePath := filepath.Join(uploadTempDir, tempFileName)
	if err := os.MkdirAll(uploadTempDir, 0755); err != nil {
		http.Error(wr, "Server error.", http.StatusInternalServerError)
		return
	}
	outFile, err := os.Create(hostTempFilePath)
	if err != nil {
		http.Error(wr, "Server error.", http.StatusInternalServerError)
		return
	}
	defer outFile.Close()
	if _, err := io.Copy(outFile, req.Body); err != nil {
		outFile.Close()
		os.Remove(hostTempFilePath)
		http.Error(wr, "File transfer failed.", http.StatusInternalServerError)
		return
	}
	taskQueue <- uploadTask{hostTempFilePath, containerName, originalFilename, cleanContainerDestPath}
	wr.WriteHeader(http.StatusAccepted)
	fmt.Fprintf(wr, "File '%s' queued for processing on container '%s'.\n", originalFilename, containerName)
}

// processUploadTask is the step the article names but does not show: one push per file.
func processUploadTask(task uploadTask) error {
	output, err := exec.Command(incusCommand, "file", "push", "-q", "-p", task.hostTempFilePath,
		task.containerName+task.containerDestinationPath).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v: %s", err, strings.TrimSpace(string(output)))
	}
	return nil
}

func filePushWorker() {
	for task := range taskQueue {
		for i := 0; i <= maxRetries; i++ {
			err := processUploadTask(task)
			if err == nil {
				delivered.Add(1)
				break
			}
			if i < maxRetries && !strings.Contains(err.Error(), "not found") {
				time.Sleep(retryDelay)
				continue
			}
			log.Printf("ERROR: task for %s failed: %v", task.containerName, err)
			failed.Add(1)
			break
		}
		os.Remove(task.hostTempFilePath)
	}
}

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	workers := flag.Int("workers", 4, "push workers")
	flag.StringVar(&uploadTempDir, "dir", "/tmp/incus_uploads", "host temporary directory")
	flag.StringVar(&incusCommand, "incus", "incus", "incus client")
	flag.Parse()
	for i := 0; i < *workers; i++ {
		go filePushWorker()
	}
	http.HandleFunc("/upload", uploadHandler)
	http.HandleFunc("/delivered", func(wr http.ResponseWriter, req *http.Request) {
		fmt.Fprintf(wr, "%d %d\n", delivered.Load(), failed.Load())
	})
	listener, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("listening address=%s", listener.Addr())
	log.Fatal(http.Serve(listener, nil))
}
