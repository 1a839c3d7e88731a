module clawhost.local/pause

go 1.25
