package tokenizer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// TestUnicodeClasses checks, for every code point, that the pre-tokenizer
// classifies it as letter, number, whitespace or other exactly as the
// Hugging Face regex does (testdata/tokenizer/unicode-classes.json, made by
// bench/tokenizer/unicode-classes.js from the HF pre-tokenizer itself).
func TestUnicodeClasses(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(testdataDir, "unicode-classes.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ranges map[string][][2]rune
	if err := json.Unmarshal(data, &ranges); err != nil {
		t.Fatalf("unicode-classes.json: %v", err)
	}
	want := make([]uint8, 0x110000) // 0: other
	for name, bit := range map[string]uint8{"L": classLetter, "N": classNumber, "S": classSpace} {
		if len(ranges[name]) == 0 {
			t.Fatalf("unicode-classes.json: no %s ranges", name)
		}
		for _, r := range ranges[name] {
			for c := r[0]; c <= r[1]; c++ {
				want[c] = bit
			}
		}
	}
	bad := 0
	for c := rune(0); c < 0x110000; c++ {
		if c >= 0xD800 && c <= 0xDFFF {
			continue // not text
		}
		var got uint8
		if c < 0x80 {
			got = asciiClass[c]
		} else {
			got = slowClass(c)
		}
		got &^= classNewline
		if got != want[c] {
			if bad++; bad <= 10 {
				t.Errorf("U+%04X: class %03b, the HF regex says %03b (letter=1, number=2, space=4)", c, got, want[c])
			}
		}
	}
	if bad > 0 {
		t.Fatalf("%d code points classified differently", bad)
	}
}
