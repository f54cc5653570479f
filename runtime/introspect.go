package runtime

import (
	"time"

	"github.com/zasync/zasync/actors"
)

// Introspection of this process's dispatcher (zc.async's getJobInfo, getActiveJobIds,
// getStatistics, getPollInfo/iterPolls and getStatusInfo). It describes what this process
// saw, kept in memory and bounded (the last PollHistorySize polls, the last JobHistorySize
// job runs); it reads nothing from Redis. A runtime that is not started reports STOPPED and
// empty results, without error; a restart begins a fresh history.

// PollHistorySize is how many polls a started runtime remembers: the newest 400.
const PollHistorySize = 400

// JobHistorySize is how many job runs a started runtime remembers: the 200 claimed last
// (plus any still running).
const JobHistorySize = 200

// JobInfo describes one run of a job by this process's dispatcher: one claim of it by one of
// its agents and what the run made of it. A job claimed twice by this process (it was
// reassigned, then came back) is described by its newest run.
type JobInfo struct {
	// ID, Queue and Agent name the job and the agent that claimed it.
	ID    string
	Queue string
	Agent string
	// Call is the job's call as handler(args…).
	Call string
	// Started is when its run started; Completed when the run ended (however it ended: see
	// Ending), zero while it runs.
	Started   time.Time
	Completed time.Time
	// Failed: the run stored a failure as the job's outcome, or could not use the store to
	// store anything (Ending "failed").
	Failed bool
	// Result is the stored result (JSON) or the failure's traceback text, or for a run cut
	// short the error that cut it, at most 10,000 characters (then "\n[...TRUNCATED...]" is
	// appended).
	Result     string
	QuotaNames []string
	// PollID is the poll after which the job was claimed (0: before the first poll).
	PollID int64
	// Reassigned: the job was taken from this run (a sibling presumed this dispatcher dead
	// and cleaned its agent): its fenced commit fails, and the new owner is responsible for
	// it. Set by the first poll that notices it, or by the run's end.
	Reassigned bool
	// Ending is how the run ended ("finished", "rescheduled", "waiting", "interrupted",
	// "reassigned", "failed", "cancelled"), empty while it runs.
	Ending string
	// Worker names the run: the id of the job actor that held the job (an agent's job
	// actors hold one job after another).
	Worker string
}

// PollInfo is one poll of the dispatcher: in each queue it serves, unavailable (not
// activated), or per agent its size, the jobs the store lists under it, its last claim
// error, and its new and active jobs.
type PollInfo struct {
	// ID increases by one at each poll of the dispatcher, from 1.
	ID   int64
	Time time.Time
	// Queues are the queues served, by name.
	Queues map[string]QueuePoll
}

// QueuePoll is one queue in a PollInfo.
type QueuePoll struct {
	// Unavailable: the dispatcher is not activated in this queue (its activation was refused,
	// as when another process runs with the same UUID, or its record is gone), so its agents
	// did not claim. Agents is then nil.
	Unavailable bool
	// Agents are the queue's agents, by name.
	Agents map[string]AgentPoll
}

// AgentPoll is one agent in a QueuePoll.
type AgentPoll struct {
	// Size is how many jobs the agent runs at once.
	Size int
	// Len is how many jobs the store lists under the agent (parked ones included); -1 when
	// that could not be read.
	Len int
	// Error is the text of the agent's last claim error, empty when its last claim went well.
	Error string
	// NewJobs are the ids the agent claimed since the previous poll, in claim order: the
	// first few of them (NewJobsCount counts them all).
	NewJobs []string
	// NewJobsCount is how many jobs the agent claimed since the previous poll.
	NewJobsCount int
	// ActiveJobs are the ids of the agent's runs going on at the poll, in claim order.
	ActiveJobs []string
}

// Statistics sums up the runs of a period: counts and the shortest and longest runs of each
// kind (zc.async's getStatistics, without its quirks: shortest is the shortest, and Start is
// the oldest end of the period). Started = Successful + Failed + active runs + Unknown.
type Statistics struct {
	// Started counts the runs claimed in the period.
	Started int
	// Successful counts the runs that ended storing a success, or handing the job over to
	// an inner job it waits for.
	Successful int
	// Failed counts the runs that ended otherwise: a failure stored, rescheduled by the
	// retry policy, interrupted, reassigned, or stopped by a store error.
	Failed int
	// Unknown counts jobs the polls of the period list as claimed whose runs the history no
	// longer remembers (more than JobHistorySize runs were claimed since).
	Unknown int
	// The shortest and longest runs of each kind, from their start to their end (or now,
	// for active runs); zero when there is none.
	ShortestSuccessful, LongestSuccessful JobDuration
	ShortestFailed, LongestFailed         JobDuration
	ShortestActive, LongestActive         JobDuration
	// Start and End bound the period the statistics cover: Start is the since asked for,
	// or the oldest poll or run the history remembers when that is later; End is the before
	// asked for, or now when that is earlier.
	Start, End time.Time
}

// JobDuration is a job id and how long its run took (or has taken so far), in Statistics.
type JobDuration struct {
	ID       string
	Duration time.Duration
}

// StatusInfo describes the dispatcher: its status, poll interval, time since its last poll,
// uptime and UUID.
type StatusInfo struct {
	Status       DispatcherStatus
	PollInterval time.Duration
	// SinceLastPoll is how long ago the last poll was recorded; zero before the first.
	SinceLastPoll time.Duration
	// Uptime is how long the dispatcher has been running; zero once it is stopped.
	Uptime time.Duration
	UUID   string
}

// DispatcherStatus is a dispatcher's status in StatusInfo.
type DispatcherStatus string

// The statuses of a dispatcher.
const (
	DispatcherStopped  DispatcherStatus = "STOPPED"  // not started, or stopping
	DispatcherStarting DispatcherStatus = "STARTING" // no poll yet, and the first is not overdue
	DispatcherStuck    DispatcherStatus = "STUCK"    // the next poll is overdue by more than a poll interval
	DispatcherRunning  DispatcherStatus = "RUNNING"  // polling as it should
)

// pollFrom returns a poll of the node as a PollInfo, sharing its id slices (the node hands
// out copies).
func pollFrom(p actors.PollInfo) PollInfo {
	out := PollInfo{ID: p.ID, Time: p.Time}
	if p.Queues != nil {
		out.Queues = make(map[string]QueuePoll, len(p.Queues))
	}
	for name, q := range p.Queues {
		qp := QueuePoll{Unavailable: q.Unavailable}
		if q.Agents != nil {
			qp.Agents = make(map[string]AgentPoll, len(q.Agents))
		}
		for a, ap := range q.Agents {
			qp.Agents[a] = AgentPoll(ap)
		}
		out.Queues[name] = qp
	}
	return out
}

// started returns the running node (also while it stops), or nil.
func (rt *Runtime) started() *actors.Node { return rt.live.Load() }

// JobInfo describes the newest run of job id (an id in one of the served queues) by this
// process's dispatcher; false when it has not run here since Start, or has been forgotten.
func (rt *Runtime) JobInfo(id string) (JobInfo, bool) {
	if n := rt.started(); n != nil {
		info, ok := n.JobInfo(id)
		return JobInfo(info), ok
	}
	return JobInfo{}, false
}

// ActiveJobIDs lists the jobs running in this process right now, in claim order, in queue
// and agent (an empty string matches all). It says what runs here, not what Redis says: a job
// taken from this process is listed until its handler returns.
func (rt *Runtime) ActiveJobIDs(queue, agent string) []string {
	if n := rt.started(); n != nil {
		return n.ActiveJobIDs(queue, agent)
	}
	return []string{}
}

// Statistics sums up the runs this process claimed in [since, before) (a zero time leaves
// that end open), in queue and agent (an empty string matches all).
func (rt *Runtime) Statistics(since, before time.Time, queue, agent string) Statistics {
	if n := rt.started(); n != nil {
		s := n.Statistics(since, before, queue, agent)
		return Statistics{
			Started: s.Started, Successful: s.Successful, Failed: s.Failed, Unknown: s.Unknown,
			ShortestSuccessful: JobDuration(s.ShortestSuccessful), LongestSuccessful: JobDuration(s.LongestSuccessful),
			ShortestFailed: JobDuration(s.ShortestFailed), LongestFailed: JobDuration(s.LongestFailed),
			ShortestActive: JobDuration(s.ShortestActive), LongestActive: JobDuration(s.LongestActive),
			Start: s.Start, End: s.End,
		}
	}
	return Statistics{}
}

// Polls returns the dispatcher's polls in [since, before) (a zero time leaves that end open),
// newest first, at most count of them (count <= 0: all it remembers).
func (rt *Runtime) Polls(since, before time.Time, count int) []PollInfo {
	if n := rt.started(); n != nil {
		polls := n.Polls(since, before, count)
		out := make([]PollInfo, len(polls))
		for i, p := range polls {
			out[i] = pollFrom(p)
		}
		return out
	}
	return []PollInfo{}
}

// PollInfo returns the dispatcher's poll id, if it is still remembered.
func (rt *Runtime) PollInfo(id int64) (PollInfo, bool) {
	if n := rt.started(); n != nil {
		p, ok := n.PollInfo(id)
		return pollFrom(p), ok
	}
	return PollInfo{}, false
}

// StatusInfo describes this process's dispatcher: RUNNING, STARTING, STUCK, or STOPPED when
// the runtime is not started.
func (rt *Runtime) StatusInfo() StatusInfo {
	if n := rt.started(); n != nil {
		s := n.StatusInfo()
		return StatusInfo{Status: DispatcherStatus(s.Status), PollInterval: s.PollInterval, SinceLastPoll: s.SinceLastPoll,
			Uptime: s.Uptime, UUID: s.UUID}
	}
	return StatusInfo{Status: DispatcherStopped, PollInterval: rt.cfg.PollInterval, UUID: rt.assigner()}
}
