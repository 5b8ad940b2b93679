package hub

import (
	"fmt"
	"io"
	"time"
)

// progress draws one line per file on a terminal: name, bytes so far,
// total and rate, redrawn in place with \r at most every progressEvery.
// A nil *progress draws nothing.
type progress struct {
	w           io.Writer
	name        string
	total, done int64
	base        int64 // bytes present when this attempt started, for the rate
	start, last time.Time
	width       int // of the last line, to blank leftovers
}

const progressEvery = 250 * time.Millisecond

func newProgress(w io.Writer, name string, total int64) *progress {
	if w == nil {
		return nil
	}
	now := time.Now()
	return &progress{w: w, name: name, total: total, start: now, last: now}
}

// set restarts the count at off, where a (resumed) attempt begins.
func (p *progress) set(off int64) {
	if p == nil {
		return
	}
	p.done, p.base, p.start = off, off, time.Now()
}

func (p *progress) Write(b []byte) (int, error) {
	if p == nil {
		return len(b), nil
	}
	p.done += int64(len(b))
	if now := time.Now(); now.Sub(p.last) >= progressEvery {
		p.last = now
		p.draw()
	}
	return len(b), nil
}

func (p *progress) finish(ok bool) {
	if p == nil {
		return
	}
	p.draw()
	if ok {
		fmt.Fprintln(p.w)
	} else {
		fmt.Fprintln(p.w, " failed")
	}
}

func (p *progress) draw() {
	total := "?"
	if p.total >= 0 {
		total = humanBytes(p.total)
	}
	rate := ""
	if secs := time.Since(p.start).Seconds(); secs > 0 {
		rate = humanBytes(int64(float64(p.done-p.base)/secs)) + "/s"
	}
	line := fmt.Sprintf("%s  %s / %s  %s", p.name, humanBytes(p.done), total, rate)
	pad := max(p.width-len(line), 0)
	p.width = len(line)
	fmt.Fprintf(p.w, "\r%s%*s", line, pad, "")
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	f, i := float64(n), 0
	for f >= unit && i < 4 {
		f /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", f, "KMGT"[i-1])
}
