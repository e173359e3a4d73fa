//go:build unix && !linux

package rawio

import "syscall"

// Elsewhere than on Linux the calls go through package syscall, which the
// scheduler sees: callers keep one code path (TryRead included) without the
// raw calls' gain.
const supported = true

func (c *Conn) read(fd uintptr) bool {
	for {
		n, err := syscall.Read(int(fd), c.rp)
		switch err {
		case nil:
			c.rn = n
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		default:
			c.rerr = errno(err)
		}
		return true
	}
}

func (c *Conn) write(fd uintptr) bool { return c.writeAll(fd, &c.wp) }

// writev writes the buffers one after another.
func (c *Conn) writev(fd uintptr) bool {
	for len(c.wv) > 0 && c.werr == 0 {
		if !c.writeAll(fd, &c.wv[0]) {
			return false
		}
		c.wv = c.wv[1:]
	}
	return true
}

// writeAll writes *b until it is empty or fails, consuming it; false on
// EAGAIN.
func (c *Conn) writeAll(fd uintptr, b *[]byte) bool {
	for len(*b) > 0 {
		n, err := syscall.Write(int(fd), *b)
		switch err {
		case nil:
			c.wn += n
			*b = (*b)[n:]
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			c.werr = errno(err)
			return true
		}
	}
	return true
}

func errno(err error) syscall.Errno {
	if e, ok := err.(syscall.Errno); ok && e != 0 {
		return e
	}
	return syscall.EIO
}
