package main

import (
	"errors"
	"flag"
	"io"
	"os"
	"strings"
)

// errUsage reports that flag parsing failed (and already said why);
// errHelp that -h printed the help. Neither is printed again.
var (
	errUsage = errors.New("usage")
	errHelp  = errors.New("help")
)

// newFlagSet returns a flag set for a subcommand writing its help to stderr.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("custos "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parse parses args, first taking each flag's default from the environment
// variable CUSTOS_<FLAG> (upper case, '-' → '_'), so that every flag can be
// set either way; a flag on the command line wins.
func parse(fs *flag.FlagSet, args []string) error {
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		env := "CUSTOS_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok && err == nil {
			if e := f.Value.Set(v); e != nil {
				err = errors.New(env + ": " + e.Error())
			}
		}
	})
	if err != nil {
		return err
	}
	if e := fs.Parse(args); e != nil {
		if errors.Is(e, flag.ErrHelp) {
			return errHelp
		}
		return errUsage
	}
	return nil
}
