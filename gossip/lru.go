package gossip

import "container/list"

// lru is a bounded map that forgets its least recently used entries. It is not
// safe for concurrent use; its owner locks.
type lru[K comparable, V any] struct {
	capacity int
	items    map[K]*list.Element
	order    *list.List // of *lruItem[K, V]; front is the most recently used
	// keep, if not nil, says an entry must not be evicted (a verification
	// still running). put fails rather than evict one.
	keep func(V) bool
	// evicted, if not nil, is told of every entry put evicts.
	evicted func(K, V)
}

type lruItem[K comparable, V any] struct {
	key K
	val V
}

func newLRU[K comparable, V any](capacity int) *lru[K, V] {
	return &lru[K, V]{capacity: capacity, items: make(map[K]*list.Element), order: list.New()}
}

// get returns the value for k and marks it used.
func (c *lru[K, V]) get(k K) (V, bool) {
	e, ok := c.items[k]
	if !ok {
		var zero V
		return zero, false
	}
	c.order.MoveToFront(e)
	return e.Value.(*lruItem[K, V]).val, true
}

// put sets k to v, evicting the least recently used entries that keep allows
// to make room. It returns false, changing nothing, when the cache is full of
// entries that must be kept.
func (c *lru[K, V]) put(k K, v V) bool {
	if e, ok := c.items[k]; ok {
		e.Value.(*lruItem[K, V]).val = v
		c.order.MoveToFront(e)
		return true
	}
	for len(c.items) >= c.capacity {
		victim := c.order.Back()
		for victim != nil && c.keep != nil && c.keep(victim.Value.(*lruItem[K, V]).val) {
			victim = victim.Prev()
		}
		if victim == nil {
			return false
		}
		it := victim.Value.(*lruItem[K, V])
		c.order.Remove(victim)
		delete(c.items, it.key)
		if c.evicted != nil {
			c.evicted(it.key, it.val)
		}
	}
	c.items[k] = c.order.PushFront(&lruItem[K, V]{key: k, val: v})
	return true
}

// remove deletes k, without telling evicted.
func (c *lru[K, V]) remove(k K) {
	if e, ok := c.items[k]; ok {
		c.order.Remove(e)
		delete(c.items, k)
	}
}

func (c *lru[K, V]) len() int { return len(c.items) }
