// Package spool is a durable local queue of opaque records: append-only
// segment files, each Append fsync'd before it returns (Write: left to the
// next fsync), acknowledged records dropped segment by segment. The ledger journals every settled entry here
// before writing it to the database, so an entry acknowledged to the gateway
// survives a database outage and a crash of the process alike.
//
// A record on disk is: 4-byte little-endian payload length, 4-byte CRC-32C
// of the payload, payload. Only the tail of a segment can be torn (appends
// are written in order); reading stops there. A segment with a bad record is
// renamed *.corrupt once its readable records are acknowledged, never deleted.
package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// MaxRecord bounds one record; a longer length on disk means corruption.
const MaxRecord = 1 << 20

const (
	headerSize = 8
	suffix     = ".spool"
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// Spool is safe for concurrent use. One process owns a directory at a time
// (an flock on dir/LOCK).
type Spool struct {
	dir     string
	maxSize int64
	lock    *os.File

	mu    sync.Mutex
	cur   *os.File
	curID uint64
	size  int64
	segs  map[uint64]*segment
	next  uint64
}

type segment struct {
	path     string
	appended int
	acked    int
	closed   bool
	corrupt  bool
}

// Segment holds the records an earlier run left in one segment file.
type Segment struct {
	ID      uint64
	Records [][]byte
	// Torn reports that the file ended in an unreadable record (a crash
	// during an append that was never acknowledged, or corruption).
	Torn bool
}

// Open takes dir (creating it) and returns the records left by earlier runs,
// oldest first; the caller replays them and Acks them like new ones.
// maxSegment is the size at which a segment is closed and a new one started.
func Open(dir string, maxSegment int64) (*Spool, []Segment, error) {
	if maxSegment <= 0 {
		maxSegment = 8 << 20
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("spool: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("spool: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, nil, fmt.Errorf("spool: %s is in use by another process: %w", dir, err)
	}
	s := &Spool{dir: dir, maxSize: maxSegment, lock: lock, segs: map[uint64]*segment{}}
	left, err := s.load()
	if err != nil {
		lock.Close()
		return nil, nil, err
	}
	return s, left, nil
}

func (s *Spool) load() ([]Segment, error) {
	names, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	var ids []uint64
	for _, n := range names {
		base, ok := strings.CutSuffix(n.Name(), suffix)
		if !ok {
			continue
		}
		id, err := strconv.ParseUint(base, 10, 64)
		if err != nil {
			continue
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var out []Segment
	for _, id := range ids {
		path := s.path(id)
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("spool: %w", err)
		}
		recs, torn := Decode(data)
		s.segs[id] = &segment{path: path, appended: len(recs), closed: true, corrupt: torn}
		if len(recs) == 0 {
			s.retire(id)
		} else {
			out = append(out, Segment{ID: id, Records: recs, Torn: torn})
		}
		s.next = id + 1
	}
	return out, nil
}

func (s *Spool) path(id uint64) string {
	return filepath.Join(s.dir, fmt.Sprintf("%020d%s", id, suffix))
}

// Decode reads records from a segment's bytes up to the first unreadable one;
// torn reports whether anything was left over.
func Decode(data []byte) (recs [][]byte, torn bool) {
	for len(data) > 0 {
		if len(data) < headerSize {
			return recs, true
		}
		n := binary.LittleEndian.Uint32(data[0:4])
		sum := binary.LittleEndian.Uint32(data[4:8])
		if n > MaxRecord || int(n) > len(data)-headerSize {
			return recs, true
		}
		p := data[headerSize : headerSize+int(n)]
		if crc32.Checksum(p, crcTable) != sum {
			return recs, true
		}
		recs = append(recs, slices.Clone(p))
		data = data[headerSize+int(n):]
	}
	return recs, false
}

// Encode appends the framed record p to buf.
func Encode(buf, p []byte) []byte {
	var h [headerSize]byte
	binary.LittleEndian.PutUint32(h[0:4], uint32(len(p)))
	binary.LittleEndian.PutUint32(h[4:8], crc32.Checksum(p, crcTable))
	return append(append(buf, h[:]...), p...)
}

// ErrClosed is returned by Append after Close.
var ErrClosed = errors.New("spool: closed")

// Append writes recs to the current segment and fsyncs it before returning
// the segment's id: when it returns nil the records survive a crash.
func (s *Spool) Append(recs [][]byte) (uint64, error) { return s.write(recs, true) }

// Write appends recs like Append without waiting for the disk: when it
// returns nil they survive a crash of the process (they are in the kernel's
// page cache), and a power loss once the next Append's fsync, Close or the
// kernel's writeback has run. For records on a hot path whose loss in a
// power cut costs little.
func (s *Spool) Write(recs [][]byte) (uint64, error) { return s.write(recs, false) }

func (s *Spool) write(recs [][]byte, sync bool) (uint64, error) {
	var buf []byte
	for _, r := range recs {
		if len(r) > MaxRecord {
			return 0, fmt.Errorf("spool: record of %d bytes exceeds %d", len(r), MaxRecord)
		}
		buf = Encode(buf, r)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.segs == nil {
		return 0, ErrClosed
	}
	if s.cur == nil {
		if err := s.rotate(); err != nil {
			return 0, err
		}
	}
	id, f := s.curID, s.cur
	_, err := f.Write(buf)
	if err == nil {
		// Counted before the fsync: if it fails, the caller writes the
		// records elsewhere, and the segment is kept for the next Open,
		// whose replay is idempotent, rather than retired under them.
		s.segs[id].appended += len(recs)
		s.size += int64(len(buf))
		if sync {
			// Unlocked, so that Write is not held behind the fsync; it
			// covers whatever was written to the file before it.
			s.mu.Unlock()
			err = f.Sync()
			s.mu.Lock()
		}
	}
	if err != nil {
		// The segment may now end in a torn record: never append to it
		// again. Its acknowledged records stay readable for replay.
		if s.cur == f {
			s.closeCurrent()
		}
		return 0, fmt.Errorf("spool: append: %w", err)
	}
	// Rotate only after an fsync, so that a closed segment holds nothing
	// that Write left unsynced.
	if sync && s.cur == f && s.size >= s.maxSize {
		s.closeCurrent()
	}
	return id, nil
}

func (s *Spool) rotate() error {
	id := s.next
	f, err := os.OpenFile(s.path(id), os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("spool: new segment: %w", err)
	}
	// The new file's directory entry must be durable too.
	if err := syncDir(s.dir); err != nil {
		f.Close()
		return fmt.Errorf("spool: new segment: %w", err)
	}
	s.next++
	s.cur, s.curID, s.size = f, id, 0
	s.segs[id] = &segment{path: s.path(id)}
	return nil
}

func (s *Spool) closeCurrent() {
	if s.cur == nil {
		return
	}
	// Whatever Write left unsynced goes to the disk with the file.
	_ = s.cur.Sync()
	_ = s.cur.Close()
	seg := s.segs[s.curID]
	seg.closed = true
	s.cur = nil
	if seg.acked >= seg.appended {
		s.retire(s.curID)
	}
}

// Ack marks n records of segment id as safely stored elsewhere; a closed
// segment whose records are all acknowledged is removed.
func (s *Spool) Ack(id uint64, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	seg, ok := s.segs[id]
	if !ok {
		return
	}
	seg.acked += n
	if seg.closed && seg.acked >= seg.appended {
		s.retire(id)
	}
}

func (s *Spool) retire(id uint64) {
	seg := s.segs[id]
	delete(s.segs, id)
	if seg.corrupt {
		_ = os.Rename(seg.path, seg.path+".corrupt")
		return
	}
	_ = os.Remove(seg.path)
}

// Depth is the number of records appended and not yet acknowledged.
func (s *Spool) Depth() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, seg := range s.segs {
		n += seg.appended - seg.acked
	}
	return n
}

// Close closes the current segment (removing it if fully acknowledged) and
// releases the directory. Unacknowledged records stay for the next Open.
func (s *Spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.segs == nil {
		return nil
	}
	s.closeCurrent()
	s.segs = nil
	return s.lock.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}
