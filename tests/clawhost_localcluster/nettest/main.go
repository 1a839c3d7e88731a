// nettest is the real-node tests' tool inside pods (the images carry no shell):
//
//	nettest serve PORT            answer every TCP connection with "hello from HOSTNAME\n" and close it
//	nettest connect HOST:PORT [S] connect within S seconds (default 3); print the reply; exit 1 if refused/timed out
//	nettest resolve NAME          print NAME's addresses; exit 1 if it does not resolve
//	nettest sleep                 wait for SIGTERM
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fail("usage: nettest serve PORT | connect HOST:PORT [SECONDS] | resolve NAME | sleep")
	}
	switch os.Args[1] {
	case "serve":
		serve(arg(2))
	case "connect":
		seconds := 3.0
		if len(os.Args) > 3 {
			parsed, err := strconv.ParseFloat(os.Args[3], 64)
			if err != nil {
				fail("bad timeout: " + os.Args[3])
			}
			seconds = parsed
		}
		connect(arg(2), time.Duration(seconds*float64(time.Second)))
	case "resolve":
		resolve(arg(2))
	case "sleep":
		signals := make(chan os.Signal, 1)
		signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
		<-signals
	default:
		fail("unknown command " + os.Args[1])
	}
}

func arg(index int) string {
	if len(os.Args) <= index {
		fail("missing argument")
	}
	return os.Args[index]
}

func fail(message string) {
	fmt.Fprintln(os.Stderr, message)
	os.Exit(1)
}

func serve(port string) {
	listener, err := net.Listen("tcp", ":"+port)
	if err != nil {
		fail(err.Error())
	}
	host, _ := os.Hostname()
	go func() {
		signals := make(chan os.Signal, 1)
		signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
		<-signals
		os.Exit(0)
	}()
	for {
		conn, err := listener.Accept()
		if err != nil {
			continue
		}
		go func(c net.Conn) {
			defer c.Close()
			fmt.Fprintf(c, "hello from %s\n", host)
		}(conn)
	}
}

func connect(address string, timeout time.Duration) {
	conn, err := net.DialTimeout("tcp", address, timeout)
	if err != nil {
		fail("refused: " + err.Error())
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(timeout))
	reply, _ := io.ReadAll(conn)
	fmt.Printf("connected: %s", reply)
}

func resolve(name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	addresses, err := net.DefaultResolver.LookupHost(ctx, name)
	if err != nil || len(addresses) == 0 {
		fail(fmt.Sprintf("unresolved: %v", err))
	}
	for _, address := range addresses {
		fmt.Println(address)
	}
}
