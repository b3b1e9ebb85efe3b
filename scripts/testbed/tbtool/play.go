package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// playResult is what the player page reports and what play prints.
type playResult struct {
	OK          bool     `json:"ok"`
	Time        float64  `json:"current_time"`
	PageSeconds float64  `json:"page_seconds"` // since the page started
	WallSeconds float64  `json:"wall_seconds"` // since chromium started
	Fatal       string   `json:"fatal,omitempty"`
	Log         []string `json:"log,omitempty"`
	Src         string   `json:"src"`
}

// cmdPlay plays an HLS URL in headless Chromium with hls.js and prints
// JSON once video.currentTime reached -min seconds (ok) or the player
// failed or -timeout passed. The page and hls.js are served on loopback
// (e2e/testdata/hlsjs/player.html; the media server must allow CORS).
func cmdPlay(args []string) error {
	fs := flag.NewFlagSet("play", flag.ExitOnError)
	src := fs.String("src", "", "HLS playlist URL")
	page := fs.String("page", "", "player page (player.html)")
	hlsjs := fs.String("hlsjs", "", "hls.min.js")
	chromium := fs.String("chromium", "chromium", "chromium binary")
	minTime := fs.Float64("min", 4, "playback seconds that count as playing")
	timeout := fs.Duration("timeout", 2*time.Minute, "give up after")
	fs.Parse(args)
	html, err := os.ReadFile(*page)
	if err != nil {
		return err
	}
	js, err := os.ReadFile(*hlsjs)
	if err != nil {
		return err
	}
	type report struct {
		T       float64  `json:"t"`
		Elapsed float64  `json:"elapsed"`
		Fatal   string   `json:"fatal"`
		Log     []string `json:"log"`
	}
	reports := make(chan report, 16)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(html)
	})
	mux.HandleFunc("GET /hls.min.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		w.Write(js)
	})
	mux.HandleFunc("POST /result", func(w http.ResponseWriter, r *http.Request) {
		var rep report
		if json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&rep) == nil {
			select {
			case reports <- rep:
			default:
			}
		}
		w.WriteHeader(http.StatusNoContent)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), *timeout+30*time.Second)
	defer cancel()
	udd, err := os.MkdirTemp("", "tbplay")
	if err != nil {
		return err
	}
	defer os.RemoveAll(udd)
	cmd := exec.CommandContext(ctx, *chromium, "--headless", "--no-sandbox", "--disable-gpu",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
		"--disable-dev-shm-usage", "--autoplay-policy=no-user-gesture-required", "--mute-audio",
		"--user-data-dir="+udd, "http://"+ln.Addr().String()+"/?src="+*src)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	res := playResult{Src: *src}
	deadline := time.After(*timeout)
loop:
	for {
		select {
		case rep := <-reports:
			res.Time, res.PageSeconds, res.Log = rep.T, rep.Elapsed, rep.Log
			if rep.Fatal != "" {
				res.Fatal = rep.Fatal
				break loop
			}
			if rep.T >= *minTime {
				res.OK = true
				break loop
			}
		case err := <-exited:
			exited <- err
			res.Fatal = fmt.Sprintf("chromium exited: %v", err)
			break loop
		case <-deadline:
			res.Fatal = "playback did not reach the minimum in time"
			break loop
		}
	}
	res.WallSeconds = time.Since(start).Seconds()
	cancel()
	<-exited
	out, _ := json.MarshalIndent(res, "", "  ")
	fmt.Println(string(out))
	if !res.OK {
		return errors.New("playback failed: " + res.Fatal)
	}
	return nil
}
