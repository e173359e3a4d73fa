package balancer

import (
	"context"
	"errors"
	"testing"
	"time"
)

// acquired is the result of an Acquire run in a goroutine.
type acquired struct {
	id  int
	b   *Backend
	err error
}

// acquireAsync runs Acquire in a goroutine, which ends when Acquire
// returns, and sends its result on out.
func acquireAsync(ctx context.Context, p *Pool, id int, out chan<- acquired) {
	go func() {
		b, err := p.Acquire(ctx, nil)
		out <- acquired{id, b, err}
	}()
}

func limitedPool(t *testing.T, cfg Config, n int) (*Pool, []*Backend) {
	t.Helper()
	if cfg.MaxConcurrent == 0 {
		cfg.MaxConcurrent = 1
	}
	p, bs, _ := newTestPool(t, cfg, n)
	return p, bs
}

func mustAcquire(t *testing.T, p *Pool) *Backend {
	t.Helper()
	b, err := p.Acquire(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestAcquireWaitsForDone(t *testing.T) {
	p, bs := limitedPool(t, Config{}, 2)
	held := []*Backend{mustAcquire(t, p), mustAcquire(t, p)}
	if held[0] == held[1] {
		t.Fatal("limit of 1 exceeded")
	}
	out := make(chan acquired)
	acquireAsync(context.Background(), p, 0, out)
	waitFor(t, "the request to queue", func() bool { return p.Queued() == 1 })
	held[1].Done(nil)
	got := <-out
	if got.err != nil || got.b != held[1] {
		t.Fatalf("Acquire = %v, %v; want the backend freed", got.b, got.err)
	}
	if p.Queued() != 0 || bs[1].InFlight() != 1 {
		t.Fatalf("queued %d, in flight %d", p.Queued(), bs[1].InFlight())
	}
	got.b.Done(nil)
	held[0].Done(nil)
}

func TestAcquireFIFO(t *testing.T) {
	p, _ := limitedPool(t, Config{}, 1)
	held := mustAcquire(t, p)
	out := make(chan acquired)
	for id := range 3 {
		acquireAsync(context.Background(), p, id, out)
		waitFor(t, "the request to queue", func() bool { return p.Queued() == id+1 })
	}
	for want := range 3 {
		held.Done(nil)
		got := <-out
		if got.err != nil || got.id != want {
			t.Fatalf("answered %d (%v), want %d", got.id, got.err, want)
		}
		held = got.b
	}
	held.Done(nil)
}

func TestAcquireErrors(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		setup   func(t *testing.T, p *Pool, bs []*Backend) context.Context
		want    error
		instant bool // fails without waiting
	}{
		{"queue full", Config{MaxQueue: 1}, func(t *testing.T, p *Pool, _ []*Backend) context.Context {
			out := make(chan acquired, 1)
			ctx, cancel := context.WithCancel(context.Background())
			t.Cleanup(func() { cancel(); <-out })
			acquireAsync(ctx, p, 0, out)
			waitFor(t, "the request to queue", func() bool { return p.Queued() == 1 })
			return context.Background()
		}, ErrQueueFull, true},
		{"no queue", Config{MaxQueue: -1}, nil, ErrQueueFull, true},
		{"timeout", Config{QueueTimeout: 20 * time.Millisecond}, nil, ErrQueueTimeout, false},
		{"cancelled", Config{}, func(t *testing.T, p *Pool, _ []*Backend) context.Context {
			ctx, cancel := context.WithCancel(context.Background())
			go func() { // ends once the request queued
				for p.Queued() == 0 {
					time.Sleep(100 * time.Microsecond)
				}
				cancel()
			}()
			return ctx
		}, context.Canceled, false},
		{"deadline", Config{}, func(t *testing.T, _ *Pool, _ []*Backend) context.Context {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
			t.Cleanup(cancel)
			return ctx
		}, context.DeadlineExceeded, false},
		{"no backend up", Config{}, func(t *testing.T, _ *Pool, bs []*Backend) context.Context {
			bs[0].Done(nil)
			bs[0].SetHealthy(false)
			return context.Background()
		}, ErrNoBackend, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, bs := limitedPool(t, tt.cfg, 1)
			held := mustAcquire(t, p)
			ctx := context.Background()
			if tt.setup != nil {
				ctx = tt.setup(t, p, bs)
			}
			queued := p.Queued()
			b, err := p.Acquire(ctx, nil)
			if b != nil || !errors.Is(err, tt.want) {
				t.Fatalf("Acquire = %v, %v; want %v", b, err, tt.want)
			}
			if errors.Is(err, ErrQueueFull) || errors.Is(err, ErrQueueTimeout) {
				if !errors.Is(err, ErrNoBackend) {
					t.Fatalf("%v does not match ErrNoBackend", err)
				}
			}
			if p.Queued() != queued {
				t.Fatalf("queued %d after failing, want %d", p.Queued(), queued)
			}
			if held.InFlight() != 1 && tt.name != "no backend up" {
				t.Fatalf("in flight %d", held.InFlight())
			}
		})
	}
}

// TestAcquireWokenByCapacity checks that the queue moves when capacity
// appears other than by Done, and fails when none is left.
func TestAcquireWokenByCapacity(t *testing.T) {
	tests := []struct {
		name    string
		change  func(p *Pool, bs []*Backend)
		wantErr error
	}{
		{"limit raised", func(_ *Pool, bs []*Backend) { bs[0].SetMaxConcurrent(2) }, nil},
		{"backend up", func(_ *Pool, bs []*Backend) { bs[1].SetHealthy(true) }, nil},
		{"backend added", func(p *Pool, bs []*Backend) { p.Set([]*Backend{bs[0], NewBackend("127.0.0.9:9000")}) }, nil},
		{"weight from 0", func(_ *Pool, bs []*Backend) { bs[1].SetWeight(1) }, nil},
		{"last backend down", func(_ *Pool, bs []*Backend) { bs[0].SetHealthy(false) }, ErrNoBackend},
		{"last backend ejected", func(_ *Pool, bs []*Backend) {
			bs[0].out.consecutive.Store(4)
			bs[0].Done(errBackend) // the request held: the fifth failure in a row
		}, ErrNoBackend},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// bs[0] is at its limit; bs[1] is down with weight 0.
			p, bs, _ := newTestPool(t, Config{}, 2)
			bs[0].SetMaxConcurrent(1)
			bs[1].SetHealthy(false)
			bs[1].SetWeight(0)
			if tt.name == "backend up" {
				bs[1].SetWeight(1)
			}
			if tt.name == "weight from 0" {
				bs[1].SetHealthy(true)
			}
			held := mustAcquire(t, p)
			out := make(chan acquired)
			acquireAsync(context.Background(), p, 0, out)
			waitFor(t, "the request to queue", func() bool { return p.Queued() == 1 })
			tt.change(p, bs)
			got := <-out
			if !errors.Is(got.err, tt.wantErr) || (tt.wantErr == nil) != (got.b != nil) {
				t.Fatalf("Acquire = %v, %v; want error %v", got.b, got.err, tt.wantErr)
			}
			if held.InFlight() > held.limit.Load() {
				t.Fatalf("%d in flight, over the limit of %d", held.InFlight(), held.limit.Load())
			}
		})
	}
}

// BenchmarkAcquire8 measures Acquire when a backend is free: Pick, plus a
// look at the queue.
func BenchmarkAcquire8(b *testing.B) {
	p := benchPool(b, 8)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		be, err := p.Acquire(ctx, nil)
		if err != nil {
			b.Fatal(err)
		}
		be.release()
	}
}
