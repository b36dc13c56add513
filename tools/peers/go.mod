module github.com/custos-uem/custos/tools/peers

go 1.26.8

tool (
	github.com/jessepeterson/mdmb/cmd/mdmb
	github.com/micromdm/nanomdm/cmd/nanomdm
)

require (
	filippo.io/edwards25519 v1.1.0 // indirect
	github.com/go-kit/kit v0.10.0 // indirect
	github.com/go-logfmt/logfmt v0.5.0 // indirect
	github.com/go-sql-driver/mysql v1.8.1 // indirect
	github.com/google/btree v1.0.0 // indirect
	github.com/google/uuid v1.2.0 // indirect
	github.com/gorilla/mux v1.7.3 // indirect
	github.com/groob/finalizer v0.0.0-20170707115354-4c2ed49aabda // indirect
	github.com/groob/plist v0.0.0-20190114192801-a99fbe489d03 // indirect
	github.com/jessepeterson/cfgprofiles v0.0.0-20210303044236-3a0d6e075e27 // indirect
	github.com/jessepeterson/mdmb v0.1.0 // indirect
	github.com/lib/pq v1.10.9 // indirect
	github.com/micromdm/nanolib v0.5.0 // indirect
	github.com/micromdm/nanomdm v0.9.0 // indirect
	github.com/micromdm/plist v0.2.1 // indirect
	github.com/micromdm/scep v1.0.1-0.20201110133952-f3adbb75202b // indirect
	github.com/peterbourgon/diskv/v3 v3.0.1 // indirect
	github.com/pkg/errors v0.8.1 // indirect
	github.com/smallstep/pkcs7 v0.2.1 // indirect
	go.etcd.io/bbolt v1.3.3 // indirect
	go.mozilla.org/pkcs7 v0.0.0-20200128120323-432b2356ecb1 // indirect
	golang.org/x/crypto v0.33.0 // indirect
	golang.org/x/net v0.34.0 // indirect
	golang.org/x/sys v0.30.0 // indirect
	golang.org/x/text v0.22.0 // indirect
)
