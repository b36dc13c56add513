package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/custos-uem/custos/agent"
)

func TestParseAgentRun(t *testing.T) {
	cwd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr error
		want    agentRunConfig
	}{
		{name: "fail/negative poll", args: []string{"--poll", "-1s"}, wantErr: errUsage},
		{name: "fail/extra argument", args: []string{"now"}, wantErr: errUsage},
		{name: "fail/bad CUSTOS_NO_WAIT", env: map[string]string{"CUSTOS_NO_WAIT": "maybe"}, wantErr: errors.New("CUSTOS_NO_WAIT")},
		{name: "ok/defaults: work dir under the state dir, long poll on", args: nil,
			want: agentRunConfig{stateDir: defaultAgentState, logLevel: "info", workDir: filepath.Join(cwd, defaultAgentState, "work")}},
		{name: "ok/flags", args: []string{"--state", "/var/lib/custos", "--work-dir", "/srv/work", "--no-wait", "--poll", "1m", "--once"},
			want: agentRunConfig{stateDir: "/var/lib/custos", logLevel: "info", workDir: "/srv/work", noWait: true, poll: time.Minute, once: true}},
		{name: "ok/environment", env: map[string]string{"CUSTOS_WORK_DIR": "/data/work", "CUSTOS_NO_WAIT": "true", "CUSTOS_STATE": "/s"},
			want: agentRunConfig{stateDir: "/s", logLevel: "info", workDir: "/data/work", noWait: true}},
		{name: "ok/a flag beats the environment", args: []string{"--work-dir", "/flag"}, env: map[string]string{"CUSTOS_WORK_DIR": "/env"},
			want: agentRunConfig{stateDir: defaultAgentState, logLevel: "info", workDir: "/flag"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			var stderr bytes.Buffer
			got, err := parseAgentRun(tt.args, &stderr)
			if tt.wantErr != nil {
				if err == nil || (!errors.Is(err, tt.wantErr) && !strings.Contains(err.Error(), tt.wantErr.Error())) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v (%s)", err, stderr.String())
			}
			if *got != tt.want {
				t.Fatalf("config = %+v\nwant     %+v", *got, tt.want)
			}
		})
	}
}

func TestAgentRunHelpNamesNewFlags(t *testing.T) {
	var stderr bytes.Buffer
	if _, err := parseAgentRun([]string{"-h"}, &stderr); !errors.Is(err, errHelp) {
		t.Fatalf("err = %v", err)
	}
	for _, f := range []string{"-work-dir", "-no-wait"} {
		if !strings.Contains(stderr.String(), f) {
			t.Errorf("help lacks %s:\n%s", f, stderr.String())
		}
	}
}

func TestAgentRunNotActivated(t *testing.T) {
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	err := runAgent(context.Background(), []string{"run", "--state", filepath.Join(dir, "none"), "--no-wait"}, &stdout, &stderr)
	if !errors.Is(err, agent.ErrNotActivated) {
		t.Fatalf("err = %v", err)
	}
}
