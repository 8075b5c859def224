package serve

import (
	"bytes"
	"encoding/json"

	"github.com/llmctl/llmctl/pkg/billing/ledger"
)

// maxChoices bounds n and best_of: OpenAI's own limit for n (128), and far
// above what best_of (20 there) ever needs. Reservations and TPM admission
// multiply max_tokens by it, so it must be bounded.
const maxChoices = 128

// ImageTokens is the prompt-token allowance of one image content part.
// A base64 image's bytes say nothing about its cost to a vision model: the
// model sees a fixed grid of patches. OpenAI's published formula for a
// high-detail image (scale to fit 2048×2048, then the short side to 768,
// count 512-pixel tiles: 85 + 170 per tile) gives 765 tokens for a
// 2048×2048 image and at most 1445 for any image (8 tiles, e.g. 2048×768);
// low detail is 85. Local models are below that (LLaVA 1.5: 576 patches).
// The estimate only sizes the reservation and TPM admission: the charge is
// the backend's own count.
const ImageTokens = 1445

// decodeChoices reads n and best_of (each 1…maxChoices when set) and
// returns how many completions the request may generate: max(n, best_of).
func decodeChoices(fields map[string]json.RawMessage) (int64, *apiError) {
	choices := int64(1)
	for _, name := range []string{"n", "best_of"} {
		var v *int64
		if err := decodeField(fields, name, &v); err != nil {
			return 0, err
		}
		if v == nil {
			continue
		}
		if *v < 1 || *v > maxChoices {
			return 0, badRequest(name, "%s must be between 1 and %d, got %d", name, maxChoices, *v)
		}
		choices = max(choices, *v)
	}
	return choices, nil
}

// decodeEndUser reads the OpenAI `user` field, recorded on the charge.
func decodeEndUser(fields map[string]json.RawMessage) (string, *apiError) {
	var u string
	if err := decodeField(fields, "user", &u); err != nil {
		return "", err
	}
	if len(u) > ledger.MaxEndUser {
		return "", badRequest("user", "user is %d bytes long; at most %d are allowed", len(u), ledger.MaxEndUser)
	}
	return u, nil
}

// estimatePrompt sizes a prompt in tokens before the backend counts it:
// about four bytes a token of text, and ImageTokens for each image content
// part of a chat message instead of its bytes (a 1 MB base64 image would
// otherwise count as ~250k tokens).
func estimatePrompt(ep Endpoint, input json.RawMessage) int64 {
	text, images := int64(len(input)), int64(0)
	// Only a body that names an image is decoded further: the common text
	// request keeps its one length read.
	if ep == EndpointChat && bytes.Contains(input, []byte(`"image_url"`)) {
		var msgs []struct {
			Content json.RawMessage `json:"content"`
		}
		if json.Unmarshal(input, &msgs) == nil {
			for _, m := range msgs {
				var parts []json.RawMessage
				if len(m.Content) == 0 || m.Content[0] != '[' || json.Unmarshal(m.Content, &parts) != nil {
					continue
				}
				for _, p := range parts {
					var part struct {
						Type string `json:"type"`
					}
					if json.Unmarshal(p, &part) == nil && part.Type == "image_url" {
						text -= int64(len(p))
						images++
					}
				}
			}
		}
	}
	return max(text, 0)/4 + 1 + images*ImageTokens
}
