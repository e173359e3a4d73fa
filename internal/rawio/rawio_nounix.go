//go:build !unix

package rawio

const supported = false

func (c *Conn) read(uintptr) bool   { return true }
func (c *Conn) write(uintptr) bool  { return true }
func (c *Conn) writev(uintptr) bool { return true }
