// Package tcpproxy is a loopback TCP proxy a test owns, to cut one process off from a server
// while others keep reaching it: a network partition on one machine.
package tcpproxy

import (
	"errors"
	"io"
	"net"
	"sync"
)

// Proxy forwards every connection made to its address to a target. Cut severs all of them
// and refuses new ones until Heal.
type Proxy struct {
	target string
	ln     net.Listener

	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]net.Conn // client side → server side
	wg    sync.WaitGroup
	cuts  int // connections severed by Cut, and refused while cut
}

// Start listens on a free loopback port and forwards to target.
func Start(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{target: target, ln: ln, conns: map[net.Conn]net.Conn{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the address clients dial instead of the target's.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Cut closes every connection through the proxy, at once and with a reset (bytes in flight
// either way are lost, as in a partition), and refuses every new one until Heal.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for client, server := range p.conns {
		reset(client)
		reset(server)
		p.cuts++
	}
	clear(p.conns)
}

// Heal lets connections through again.
func (p *Proxy) Heal() {
	p.mu.Lock()
	p.cut = false
	p.mu.Unlock()
}

// Severed returns how many connections Cut closed or refused.
func (p *Proxy) Severed() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cuts
}

// Close stops listening, closes every connection and waits for the proxy's goroutines.
func (p *Proxy) Close() error {
	err := p.ln.Close()
	p.mu.Lock()
	for client, server := range p.conns {
		client.Close()
		server.Close()
	}
	clear(p.conns)
	p.mu.Unlock()
	p.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		p.mu.Lock()
		if p.cut {
			p.cuts++
			p.mu.Unlock()
			reset(client)
			continue
		}
		p.mu.Unlock()
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			client.Close()
			continue
		}
		p.mu.Lock()
		if p.cut { // cut while dialling
			p.cuts++
			p.mu.Unlock()
			reset(client)
			server.Close()
			continue
		}
		p.conns[client] = server
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(client, server, client)
		go p.pipe(client, client, server)
	}
}

// pipe copies from src to dst until either side closes, then closes both and forgets the
// connection.
func (p *Proxy) pipe(client, dst, src net.Conn) {
	defer p.wg.Done()
	io.Copy(dst, src)
	p.mu.Lock()
	delete(p.conns, client)
	p.mu.Unlock()
	dst.Close()
	src.Close()
}

// reset closes c so that its peer sees a reset, not an orderly end: what a partition that
// drops a connection looks like to the process on the other side.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}
