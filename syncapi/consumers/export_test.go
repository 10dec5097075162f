package consumers

// PlainBatches is how many batches h stored with one statement (storePlain).
func PlainBatches(h *RoomServerOutput) int64 { return h.plain.Load() }
