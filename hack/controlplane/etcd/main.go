// Command etcd is etcd's own server entrypoint, built from the go.etcd.io/etcd module.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
