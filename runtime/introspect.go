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
const PollHistorySize = actors.PollHistorySize

// JobHistorySize is how many job runs a started runtime remembers: the 200 claimed last
// (plus any still running).
const JobHistorySize = actors.JobHistorySize

// JobInfo describes one run of a job by this process's dispatcher: agent, call, start and
// end, outcome, quota names, the poll after which it was claimed, whether it was reassigned,
// how the run ended, and which run it was.
type JobInfo = actors.JobInfo

// PollInfo is one poll of the dispatcher: per queue, unavailable (not activated) or per agent
// its size, the jobs the store lists under it, its last claim error, and its new and active
// jobs.
type PollInfo = actors.PollInfo

// QueuePoll is one queue in a PollInfo.
type QueuePoll = actors.QueuePoll

// AgentPoll is one agent in a QueuePoll.
type AgentPoll = actors.AgentPoll

// Statistics sums up the runs of a period: counts and the shortest and longest runs of each
// kind.
type Statistics = actors.Statistics

// JobDuration is a job id and how long its run took, in Statistics.
type JobDuration = actors.JobDuration

// StatusInfo describes the dispatcher: its status, poll interval, time since its last poll,
// uptime and UUID.
type StatusInfo = actors.StatusInfo

// DispatcherStatus is a dispatcher's status in StatusInfo.
type DispatcherStatus = actors.DispatcherStatus

// The statuses of a dispatcher.
const (
	DispatcherStopped  = actors.DispatcherStopped  // not started, or stopping
	DispatcherStarting = actors.DispatcherStarting // no poll yet, and the first is not overdue
	DispatcherStuck    = actors.DispatcherStuck    // the next poll is overdue by more than a poll interval
	DispatcherRunning  = actors.DispatcherRunning  // polling as it should
)

// started returns the running node (also while it stops), or nil.
func (rt *Runtime) started() *actors.Node { return rt.live.Load() }

// JobInfo describes the newest run of job id (an id in one of the served queues) by this
// process's dispatcher; false when it has not run here since Start, or has been forgotten.
func (rt *Runtime) JobInfo(id string) (JobInfo, bool) {
	if n := rt.started(); n != nil {
		return n.JobInfo(id)
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
		return n.Statistics(since, before, queue, agent)
	}
	return Statistics{}
}

// Polls returns the dispatcher's polls in [since, before) (a zero time leaves that end open),
// newest first, at most count of them (count <= 0: all it remembers).
func (rt *Runtime) Polls(since, before time.Time, count int) []PollInfo {
	if n := rt.started(); n != nil {
		return n.Polls(since, before, count)
	}
	return []PollInfo{}
}

// PollInfo returns the dispatcher's poll id, if it is still remembered.
func (rt *Runtime) PollInfo(id int64) (PollInfo, bool) {
	if n := rt.started(); n != nil {
		return n.PollInfo(id)
	}
	return PollInfo{}, false
}

// StatusInfo describes this process's dispatcher: RUNNING, STARTING, STUCK, or STOPPED when
// the runtime is not started.
func (rt *Runtime) StatusInfo() StatusInfo {
	if n := rt.started(); n != nil {
		return n.StatusInfo()
	}
	return StatusInfo{Status: DispatcherStopped, PollInterval: rt.cfg.PollInterval, UUID: rt.assigner()}
}
