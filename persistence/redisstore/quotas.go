package redisstore

import (
	"context"
	"fmt"
	"slices"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/zasync/zasync/persistence"
)

func validQuota(op, q, name string, size *int) error {
	if err := validQueue(op, q); err != nil {
		return err
	}
	if err := persistence.ValidateName("quota", name); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if size != nil && *size < 1 {
		return fmt.Errorf("%s: %w: quota %s size %d is less than 1", op, persistence.ErrInvalid, name, *size)
	}
	return nil
}

// CreateQuota defines a quota.
func (s *Store) CreateQuota(ctx context.Context, q, name string, size int) error {
	const op = "create quota"
	if err := validQuota(op, q, name, &size); err != nil {
		return err
	}
	if err := s.rememberQueue(ctx, q); err != nil {
		return err
	}
	ok, err := s.rdb.HSetNX(ctx, s.k.quotas(q), name, strconv.Itoa(size)).Result()
	if err != nil {
		return s.fail(op, err)
	}
	if !ok {
		return fmt.Errorf("%s: %w: quota %s already exists in queue %s", op, persistence.ErrInvalid, name, q)
	}
	return nil
}

// RemoveQuota removes a quota; jobs naming it ignore the name from then on.
func (s *Store) RemoveQuota(ctx context.Context, q, name string) error {
	const op = "remove quota"
	if err := validQuota(op, q, name, nil); err != nil {
		return err
	}
	var removed *redis.IntCmd
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		removed = p.HDel(ctx, s.k.quotas(q), name)
		p.Del(ctx, s.k.quota(q, name))
		return nil
	})
	if err != nil {
		return s.fail(op, err)
	}
	if removed.Val() == 0 {
		return fmt.Errorf("%s: %w: quota %s in queue %s", op, persistence.ErrNotFound, name, q)
	}
	return nil
}

// ResizeQuota changes a quota's size.
func (s *Store) ResizeQuota(ctx context.Context, q, name string, size int) error {
	const op = "resize quota"
	if err := validQuota(op, q, name, &size); err != nil {
		return err
	}
	return s.transact(ctx, op, []string{s.k.quotas(q)}, func(t *txn) (writes, error) {
		var exists *redis.BoolCmd
		if err := t.pipelined(ctx, func(p redis.Pipeliner) { exists = p.HExists(ctx, s.k.quotas(q), name) }); err != nil {
			return nil, err
		}
		if !exists.Val() {
			return nil, fmt.Errorf("%w: quota %s in queue %s", persistence.ErrNotFound, name, q)
		}
		return func(p redis.Pipeliner) error {
			p.HSet(ctx, s.k.quotas(q), name, strconv.Itoa(size))
			return nil
		}, nil
	})
}

// Quota reads a quota and its holders.
func (s *Store) Quota(ctx context.Context, q, name string) (*persistence.QuotaInfo, error) {
	const op = "quota"
	if err := validQuota(op, q, name, nil); err != nil {
		return nil, err
	}
	var size *redis.StringCmd
	var holders *redis.StringSliceCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		size, holders = p.HGet(ctx, s.k.quotas(q), name), p.SMembers(ctx, s.k.quota(q, name))
		return nil
	})
	if err = pipelineErr(err); err != nil {
		return nil, s.fail(op, err)
	}
	if size.Val() == "" {
		return nil, fmt.Errorf("%s: %w: quota %s in queue %s", op, persistence.ErrNotFound, name, q)
	}
	n, err := strconv.Atoi(size.Val())
	if err != nil {
		return nil, fmt.Errorf("%s: %w: quota %s size %q", op, persistence.ErrCorrupt, name, size.Val())
	}
	ids := holders.Val()
	slices.Sort(ids)
	return &persistence.QuotaInfo{Name: name, Size: n, Holders: ids}, nil
}

// QuotaNames lists a queue's quotas.
func (s *Store) QuotaNames(ctx context.Context, q string) ([]string, error) {
	const op = "quota names"
	if err := validQueue(op, q); err != nil {
		return nil, err
	}
	names, err := s.rdb.HKeys(ctx, s.k.quotas(q)).Result()
	if err != nil {
		return nil, s.fail(op, err)
	}
	slices.Sort(names)
	return names, nil
}
