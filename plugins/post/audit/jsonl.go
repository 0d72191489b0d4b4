package audit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/groundgate/groundgate/post"
)

// JSONL configures the local JSON Lines sink: one Interaction object per
// line, appended to Path.
type JSONL struct {
	// Path of the file; created (with its directory) if missing.
	Path string `json:"path"`
	// MaxSize rotates the file before a write would take it past this
	// many bytes: Path becomes Path.1, Path.1 becomes Path.2, and so on.
	// 0 (default) never rotates.
	MaxSize int64 `json:"max_size,omitempty"`
	// MaxFiles is how many rotated files are kept (default 5).
	MaxFiles int `json:"max_files,omitempty"`
}

func (c *JSONL) validate() error {
	if c.Path == "" {
		return errors.New("jsonl: path is required")
	}
	if c.MaxSize < 0 || c.MaxFiles < 0 {
		return errors.New("jsonl: max_size and max_files must not be negative")
	}
	return nil
}

type jsonlSink struct {
	cfg  JSONL
	f    *os.File
	size int64
	buf  []byte
}

func openJSONL(c JSONL) (*jsonlSink, error) {
	if c.MaxFiles == 0 {
		c.MaxFiles = 5
	}
	if err := os.MkdirAll(filepath.Dir(c.Path), 0o750); err != nil {
		return nil, fmt.Errorf("audit: jsonl: %v", err)
	}
	s := &jsonlSink{cfg: c}
	if err := s.open(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *jsonlSink) open() error {
	f, err := os.OpenFile(s.cfg.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("audit: jsonl: %v", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("audit: jsonl: %v", err)
	}
	s.f, s.size = f, st.Size()
	return nil
}

// write appends the records as one write; a record that cannot be encoded
// is reported as permanent after the ones before it are written.
func (s *jsonlSink) write(_ context.Context, recs []*post.Interaction) (int, error) {
	if s.f == nil {
		if err := s.open(); err != nil {
			return 0, err
		}
	}
	s.buf = s.buf[:0]
	n := 0
	var perm error
	for _, in := range recs {
		b, err := in.AppendJSON(s.buf)
		if err != nil {
			perm = &permanentError{fmt.Errorf("jsonl: encoding the record: %v", err)}
			break
		}
		s.buf = append(b, '\n')
		n++
	}
	if len(s.buf) > 0 {
		if s.cfg.MaxSize > 0 && s.size > 0 && s.size+int64(len(s.buf)) > s.cfg.MaxSize {
			if err := s.rotate(); err != nil {
				return 0, err
			}
		}
		w, err := s.f.Write(s.buf)
		if err != nil {
			// Take back a partial line so the file stays one object a line.
			if w > 0 {
				_ = s.f.Truncate(s.size)
			}
			return 0, fmt.Errorf("jsonl: %v", err)
		}
		s.size += int64(w)
	}
	return n, perm
}

// rotate shifts Path.i to Path.i+1 (dropping the oldest) and Path to
// Path.1, and opens a new Path.
func (s *jsonlSink) rotate() error {
	if err := s.f.Close(); err != nil {
		return fmt.Errorf("jsonl: rotating: %v", err)
	}
	s.f = nil
	p := s.cfg.Path
	_ = os.Remove(p + "." + strconv.Itoa(s.cfg.MaxFiles))
	for i := s.cfg.MaxFiles - 1; i >= 1; i-- {
		_ = os.Rename(p+"."+strconv.Itoa(i), p+"."+strconv.Itoa(i+1))
	}
	if err := os.Rename(p, p+".1"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("jsonl: rotating: %v", err)
	}
	return s.open()
}

func (s *jsonlSink) close() error {
	if s.f == nil {
		return nil
	}
	err := s.f.Sync()
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	s.f = nil
	return err
}
