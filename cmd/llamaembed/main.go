// Command llamaembed serves and runs Llama bidirectional text-embedding models.
//
// Each subcommand lives in its own file and registers itself in init, so that
// adding one never touches this file.
package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
)

// command is one subcommand: run gets the arguments after the subcommand's name.
type command struct {
	summary string
	run     func(args []string, stdin io.Reader, stdout, stderr io.Writer) error
}

var commands = map[string]command{}

func register(name, summary string, run func(args []string, stdin io.Reader, stdout, stderr io.Writer) error) {
	if _, dup := commands[name]; dup {
		panic("llamaembed: subcommand registered twice: " + name)
	}
	commands[name] = command{summary: summary, run: run}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: llamaembed <command> [flags]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'llamaembed <command> -h' for a command's flags.")
}

func main() {
	os.Exit(runMain(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// runMain is main without the process exit, so tests can drive the CLI in-process.
func runMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	setupLogging(stderr)
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "llamaembed: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	if err := cmd.run(args[1:], stdin, stdout, stderr); err != nil {
		if err == errUsage {
			return 2
		}
		fmt.Fprintf(stderr, "llamaembed %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

// errUsage is returned by a subcommand whose flags did not parse; the flag
// package has already printed why.
var errUsage = fmt.Errorf("usage")

// setupLogging installs a text slog handler on stderr at the level named by
// LOG_LEVEL or NIM_LOG_LEVEL (debug, info, warn, error; default info).
func setupLogging(stderr io.Writer) {
	level := slog.LevelInfo
	for _, env := range []string{"LOG_LEVEL", "NIM_LOG_LEVEL"} {
		if v := os.Getenv(env); v != "" {
			var l slog.Level
			if err := l.UnmarshalText([]byte(strings.ToUpper(v))); err == nil {
				level = l
			}
			break
		}
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})))
}
