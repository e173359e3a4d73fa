module github.com/fcgigate/fcgigate

go 1.26

require (
	github.com/BurntSushi/toml v1.6.0
	github.com/sony/gobreaker/v2 v2.4.0
	go.uber.org/goleak v1.3.0
)
