# Shared by the find_package consumers: the scoreood that find_package found
# must be the copy just installed under SCOREOOD_EXPECTED_PREFIX, not some
# other one on the machine.
if(SCOREOOD_EXPECTED_PREFIX)
  file(REAL_PATH "${SCOREOOD_EXPECTED_PREFIX}" want)
  file(REAL_PATH "${scoreood_DIR}" got)
  string(FIND "${got}" "${want}/" at)
  if(NOT at EQUAL 0)
    message(FATAL_ERROR "found scoreood in ${got}, expected it under ${want}")
  endif()
endif()
