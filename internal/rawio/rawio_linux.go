package rawio

import (
	"syscall"
	"unsafe"
)

const supported = true

// read makes one read of c.rp, retrying on EINTR: false (wait, then call
// again) on EAGAIN.
func (c *Conn) read(fd uintptr) bool {
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&c.rp[0])), uintptr(len(c.rp)))
		switch e {
		case 0:
			c.rn = int(n)
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		default:
			c.rerr = e
		}
		return true
	}
}

// write writes c.wp until it is all out: false (wait for room, then call
// again) on EAGAIN.
func (c *Conn) write(fd uintptr) bool {
	for len(c.wp) > 0 {
		n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&c.wp[0])), uintptr(len(c.wp)))
		switch e {
		case 0:
			c.wn += int(n)
			c.wp = c.wp[n:]
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			c.werr = e
			return true
		}
	}
	return true
}

// writev writes c.wv until it is all out, dropping each buffer as it goes.
func (c *Conn) writev(fd uintptr) bool {
	var iov [maxIovecs]syscall.Iovec
	for {
		for len(c.wv) > 0 && len(c.wv[0]) == 0 {
			c.wv = c.wv[1:]
		}
		if len(c.wv) == 0 {
			return true
		}
		k := 0
		for _, b := range c.wv {
			if k == len(iov) {
				break
			}
			if len(b) > 0 {
				iov[k].Base = &b[0]
				iov[k].SetLen(len(b))
				k++
			}
		}
		n, _, e := syscall.RawSyscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&iov[0])), uintptr(k))
		switch e {
		case 0:
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		default:
			c.werr = e
			return true
		}
		c.wn += int(n)
		for n > 0 {
			l := uintptr(len(c.wv[0]))
			if n < l {
				c.wv[0] = c.wv[0][n:]
				break
			}
			n -= l
			c.wv = c.wv[1:]
		}
	}
}
