"""The teacher side of a run: checks, building (several, zero-shot, probe), the one "trained here?" rule, the one
loader of a finished run's teacher, the teacher-output cache and the student's loader with unlabeled images."""
