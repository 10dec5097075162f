package eventlog

import (
	"encoding/base64"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
)

// buckets is the number of key buckets in every subject. It is part of the
// on-disk format (subjects are stored with each message) and bounds
// ConsumeOptions.Partitions, so it must never change.
const buckets = 64

// emptyKeyToken stands for the empty key: a single character is never valid
// unpadded base64, so it cannot collide with an encoded key.
const emptyKeyToken = "_"

// names maps a topic to JetStream stream and subject names under a prefix.
type names struct {
	prefix string // "" or a validated dotted name
}

// checkName validates a dot-separated name of [A-Za-z0-9_-] tokens.
func checkName(what, s string) error {
	if s == "" {
		return fmt.Errorf("%s is empty", what)
	}
	for tok := range strings.SplitSeq(s, ".") {
		if tok == "" {
			return fmt.Errorf("%s %q has an empty token", what, s)
		}
		for _, r := range tok {
			if !isNameRune(r) {
				return fmt.Errorf("%s %q: character %q not allowed (use A-Z a-z 0-9 _ -)", what, s, r)
			}
		}
	}
	return nil
}

func isNameRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-'
}

// subjectBase is the subject prefix of every message of topic.
func (n names) subjectBase(topic string) string {
	if n.prefix == "" {
		return topic
	}
	return n.prefix + "." + topic
}

// stream is the stream name of topic: stream names cannot contain dots.
func (n names) stream(topic string) string {
	return strings.ReplaceAll(n.subjectBase(topic), ".", "_")
}

// subject is where a message of topic with key is published.
func (n names) subject(topic, key string) string {
	return n.subjectBase(topic) + "." + strconv.Itoa(bucketOf(key)) + "." + keyToken(key)
}

// filters are the subjects a consumer of topic subscribes to: all of them,
// or the buckets of one partition.
func (n names) filters(topic string, partitions, partition int) []string {
	base := n.subjectBase(topic)
	if partitions <= 1 {
		return []string{base + ".>"}
	}
	var fs []string
	for b := partition; b < buckets; b += partitions {
		fs = append(fs, base+"."+strconv.Itoa(b)+".*")
	}
	return fs
}

// consumer is the durable consumer name of group: names cannot contain dots
// and several other characters, which become '_'.
func consumerName(group string, partitions, partition int) string {
	name := []rune(group)
	for i, r := range name {
		if !isNameRune(r) {
			name[i] = '_'
		}
	}
	if partitions <= 1 {
		return string(name)
	}
	return fmt.Sprintf("%s_p%dof%d", string(name), partition, partitions)
}

// keyFromSubject recovers the key of a message of topic from its subject.
func (n names) keyFromSubject(topic, subject string) (string, error) {
	rest, ok := strings.CutPrefix(subject, n.subjectBase(topic)+".")
	if !ok {
		return "", fmt.Errorf("subject %q is not in topic %s", subject, topic)
	}
	b, tok, ok := strings.Cut(rest, ".")
	if !ok {
		return "", fmt.Errorf("subject %q has no key token", subject)
	}
	key, err := decodeKeyToken(tok)
	if err != nil {
		return "", fmt.Errorf("subject %q: %w", subject, err)
	}
	if strconv.Itoa(bucketOf(key)) != b {
		return "", fmt.Errorf("subject %q: bucket %s does not match key", subject, b)
	}
	return key, nil
}

func bucketOf(key string) int {
	h := fnv.New32a()
	h.Write([]byte(key))
	return int(h.Sum32() % buckets)
}

func keyToken(key string) string {
	if key == "" {
		return emptyKeyToken
	}
	return base64.RawURLEncoding.EncodeToString([]byte(key))
}

func decodeKeyToken(tok string) (string, error) {
	if tok == emptyKeyToken {
		return "", nil
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(tok)
	if err != nil || len(b) == 0 {
		return "", fmt.Errorf("bad key token %q", tok)
	}
	return string(b), nil
}
