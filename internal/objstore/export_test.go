package objstore

// SetPartSize makes multipart puts testable with small objects.
func (s *Store) SetPartSize(n int64) { s.partSize = n }
