package limits

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestRedisTimeoutsFromURL(t *testing.T) {
	for _, tc := range []struct {
		url        string
		read, dial time.Duration
		retries    int
	}{
		{"redis://127.0.0.1:6379/0", 500 * time.Millisecond, 500 * time.Millisecond, 1},
		{"redis://127.0.0.1:6379/0?read_timeout=5s", 5 * time.Second, 500 * time.Millisecond, 1},
		{"redis://127.0.0.1:6379/0?dial_timeout=2s&max_retries=3", 500 * time.Millisecond, 2 * time.Second, 3},
	} {
		opt, err := redis.ParseURL(tc.url)
		if err != nil {
			t.Fatal(err)
		}
		shortTimeouts(opt, tc.url)
		if opt.ReadTimeout != tc.read || opt.DialTimeout != tc.dial || opt.MaxRetries != tc.retries {
			t.Errorf("%s: read %s dial %s retries %d; want %s %s %d", tc.url,
				opt.ReadTimeout, opt.DialTimeout, opt.MaxRetries, tc.read, tc.dial, tc.retries)
		}
	}
}
