package tmpdbg

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"

	"github.com/fcgigate/fcgigate/fastcgi"
)

func TestDbg(t *testing.T) {
	dials := 0
	var mu sync.Mutex
	d := &net.Dialer{}
	p := fastcgi.NewPool(fastcgi.PoolConfig{Addr: "127.0.0.77:9000", Dial: func(ctx context.Context, n, a string) (net.Conn, error) {
		mu.Lock()
		dials++
		mu.Unlock()
		return d.DialContext(ctx, n, a)
	}})
	params := []fastcgi.Param{{Name: "SCRIPT_FILENAME", Value: "/work/main/test/php/hello.php"}, {Name: "REQUEST_METHOD", Value: "GET"}}
	var wg sync.WaitGroup
	for g := 0; g < 32; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 300; i++ {
				ctx, cancel := context.WithCancel(context.Background())
				resp, err := p.Do(ctx, &fastcgi.Request{Params: params})
				if err != nil {
					t.Error(i, err)
					cancel()
					return
				}
				b, err := io.ReadAll(resp)
				resp.Close()
				cancel()
				if err != nil || len(b) != 47 {
					mu.Lock()
					t.Log(i, len(b), err)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	t.Log("dials", dials)
}
