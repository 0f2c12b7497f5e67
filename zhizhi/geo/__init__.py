"""Places: the region tree (district → street → community → grid), buildings, point → grid."""
