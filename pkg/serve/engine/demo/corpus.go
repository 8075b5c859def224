package demo

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"unicode"
)

// ReadVerses reads the output of `bible -f Genesis1:1-Revelation22:21`
// (Debian package bible-kjv): one verse per line, after its reference
// ("Ge1:1 In the beginning..."). A line without a reference is taken whole;
// blank lines are skipped.
func ReadVerses(r io.Reader) ([]string, error) {
	var out []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if ref, rest, ok := strings.Cut(line, " "); ok && isReference(ref) {
			line = strings.TrimSpace(rest)
		}
		if line == "" {
			continue
		}
		out = append(out, strings.Join(strings.Fields(line), " "))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("demo: reading verses: %w", err)
	}
	return out, nil
}

// isReference reports whether s looks like "Ge1:1" or "1Co13:4".
func isReference(s string) bool {
	book, cv, ok := strings.Cut(s, ":")
	if !ok || cv == "" || book == "" {
		return false
	}
	for _, r := range cv {
		if !unicode.IsDigit(r) {
			return false
		}
	}
	return unicode.IsDigit(rune(book[len(book)-1]))
}

// HeldOut is every how-manieth verse is kept out of training, to measure
// the model on text it has not seen.
const HeldOut = 50

// Split separates the held-out verses (index%HeldOut == HeldOut-1) from the
// training verses.
func Split(verses []string) (train, held []string) {
	for i, v := range verses {
		if i%HeldOut == HeldOut-1 {
			held = append(held, v)
		} else {
			train = append(train, v)
		}
	}
	return train, held
}
