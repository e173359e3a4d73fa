package health

// keyring.go reads the gossip encryption keys from a file and installs
// them into memberlist's keyring, which is how keys rotate without a
// restart.

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"os"
	"strings"

	"github.com/hashicorp/memberlist"
)

// ReadKeyFile reads a keyring file: one base64 key (16, 24 or 32 bytes:
// AES-128, -192 or -256) per line, the first the primary key, which
// encrypts what this gateway sends; every key listed decrypts what it
// receives. Blank lines and lines starting with # are ignored. The same
// format as `consul keygen` prints.
//
// To rotate a key without a restart, on every gateway in turn, waiting for
// each step to reach all of them (see Gossip.ReloadKeys):
//  1. add the new key as a second line: it is installed, so messages
//     encrypted with it are understood everywhere;
//  2. move it to the first line: it becomes the primary key;
//  3. remove the old key's line: it is removed from the keyring.
func ReadKeyFile(path string) (keys [][]byte, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("health: keyring: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, err := base64.StdEncoding.DecodeString(line)
		if err != nil {
			return nil, fmt.Errorf("health: keyring %s:%d: not base64: %w", path, n, err)
		}
		if err := memberlist.ValidateKey(k); err != nil {
			return nil, fmt.Errorf("health: keyring %s:%d: %w", path, n, err)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("health: keyring %s: no key", path)
	}
	return keys, nil
}

// installKeys makes kr hold exactly keys, keys[0] primary: new keys are
// added first, then the primary switched, then the keys no longer listed
// removed, so that kr can decrypt both old and new traffic at every step.
// It returns how many keys it added and removed.
func installKeys(kr *memberlist.Keyring, keys [][]byte) (added, removed int, err error) {
	have := kr.GetKeys()
	for _, k := range keys {
		if !containsKey(have, k) {
			if err := kr.AddKey(k); err != nil {
				return added, removed, fmt.Errorf("health: keyring: add key: %w", err)
			}
			added++
		}
	}
	if err := kr.UseKey(keys[0]); err != nil {
		return added, removed, fmt.Errorf("health: keyring: use key: %w", err)
	}
	for _, k := range kr.GetKeys() {
		if !containsKey(keys, k) {
			if err := kr.RemoveKey(k); err != nil {
				return added, removed, fmt.Errorf("health: keyring: remove key: %w", err)
			}
			removed++
		}
	}
	return added, removed, nil
}

func containsKey(keys [][]byte, k []byte) bool {
	for _, x := range keys {
		if bytes.Equal(x, k) {
			return true
		}
	}
	return false
}
