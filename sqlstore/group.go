package sqlstore

import "sync"

// groupQueue runs requests that arrive while others are in flight
// together: each of its workers takes the next request and every request
// queued behind it (up to a maximum), and hands them to run as one group.
// Under light load a group is a single request, run at once: grouping
// adds no wait, only the cost of a channel. run must answer every request
// of its group (requests carry their own reply channels). It serves
// PostgreSQL, where one statement for many requests costs one network
// round trip (and for writes one commit) instead of one each, and SQLite's
// writer (writeQueue), where a batch shares one commit.
type groupQueue[R any] struct {
	reqs chan R
	max  int
	run  func([]R)
	mu   sync.RWMutex // held for reading while sending on reqs; close takes it to close reqs
	shut bool
	wg   sync.WaitGroup
}

const (
	// pgGroupWorkers is how many groups of one PostgreSQL queue may be in
	// flight at once. One would keep the others waiting for its answer; a
	// few keep PostgreSQL's cores busy while the next groups gather.
	pgGroupWorkers = 2
	// maxPGGroup bounds a PostgreSQL group: its statement's arrays and
	// result rows.
	maxPGGroup = 64
	// pgGroupConns is the pool of grouped statements: a connection for
	// each worker of the two PostgreSQL queues (round trips, identities).
	pgGroupConns = 2 * pgGroupWorkers
)

// newGroupQueue starts workers that run groups of at most max requests.
func newGroupQueue[R any](workers, max int, run func([]R)) *groupQueue[R] {
	q := &groupQueue[R]{reqs: make(chan R, max), max: max, run: run}
	for range workers {
		q.wg.Add(1)
		go q.loop()
	}
	return q
}

// add queues r, or returns errClosed after close. Like writeQueue.do, a
// caller waits for its answer even when its context ends meanwhile.
func (q *groupQueue[R]) add(r R) error {
	q.mu.RLock()
	defer q.mu.RUnlock()
	if q.shut {
		return errClosed
	}
	q.reqs <- r
	return nil
}

// close runs the requests already queued, refuses new ones, and waits for
// the workers to return.
func (q *groupQueue[R]) close() {
	q.mu.Lock()
	if !q.shut {
		q.shut = true
		close(q.reqs)
	}
	q.mu.Unlock()
	q.wg.Wait()
}

func (q *groupQueue[R]) loop() {
	defer q.wg.Done()
	group := make([]R, 0, q.max)
	for r := range q.reqs {
		group = append(group[:0], r)
	more:
		for len(group) < q.max {
			select {
			case r, ok := <-q.reqs:
				if !ok {
					break more
				}
				group = append(group, r)
			default:
				break more
			}
		}
		q.run(group)
	}
}
