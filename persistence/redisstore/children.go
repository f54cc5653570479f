package redisstore

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/zasync/zasync/persistence"
)

// childParentStatuses are the statuses of a parent that may still take children: a job whose
// outcome is stored has nothing left to hand them to.
var childParentStatuses = []persistence.Status{persistence.StatusNew, persistence.StatusPending,
	persistence.StatusAssigned, persistence.StatusActive}

// AddChild creates a NEW job and appends it to parent's children, in one transaction.
func (s *Store) AddChild(ctx context.Context, parent persistence.Ref, spec persistence.JobSpec) (*persistence.Job, persistence.Status, error) {
	const op = "add child"
	if err := validRef(op, parent); err != nil {
		return nil, 0, err
	}
	if err := spec.Validate(); err != nil {
		return nil, 0, fmt.Errorf("%s: %w", op, err)
	}
	var child *persistence.Job
	var status persistence.Status
	err := s.transact(ctx, op, []string{s.k.job(parent.Queue, parent.ID)}, func(t *txn) (writes, error) {
		pj, was, err := s.readJob(ctx, t, parent)
		if err != nil {
			return nil, err
		}
		if pj.Sealed {
			return nil, fmt.Errorf("%w: the children of %s are sealed (handed over to its postprocess): no more may be added",
				persistence.ErrBadStatus, parent)
		}
		if err := persistence.CheckStatus("add a child", pj.Status, childParentStatuses...); err != nil {
			return nil, err
		}
		now, err := s.now(ctx)
		if err != nil {
			return nil, err
		}
		child = newJob(parent.Queue, spec, queuedJob, now)
		child.Composite = parent.ID
		if spec.Priority == 0 { // a composite's parts are as urgent as it is
			child.Priority = level(pj)
		}
		pj.Children = append(pj.Children, child.ID)
		status = pj.Status
		return func(p redis.Pipeliner) error {
			s.writeJob(ctx, p, child, nil)
			s.writeJob(ctx, p, pj, was)
			return nil
		}, nil
	})
	if err != nil {
		return nil, 0, err
	}
	return child, status, nil
}

// SealChildren marks parent's children final when it has exactly n of them.
func (s *Store) SealChildren(ctx context.Context, parent persistence.Ref, n int) (bool, error) {
	const op = "seal children"
	if err := validRef(op, parent); err != nil {
		return false, err
	}
	var ok bool
	err := s.transact(ctx, op, []string{s.k.job(parent.Queue, parent.ID)}, func(t *txn) (writes, error) {
		pj, was, err := s.readJob(ctx, t, parent)
		if err != nil {
			return nil, err
		}
		ok = len(pj.Children) == n
		if !ok || pj.Sealed {
			return nil, nil // nothing to write: more children to see, or sealed already
		}
		pj.Sealed = true
		return func(p redis.Pipeliner) error { s.writeJob(ctx, p, pj, was); return nil }, nil
	})
	if err != nil {
		return false, err
	}
	return ok, nil
}
