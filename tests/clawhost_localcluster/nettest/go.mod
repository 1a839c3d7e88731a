module clawhost.local/nettest

go 1.25
