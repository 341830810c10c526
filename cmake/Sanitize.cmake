# SCOREOOD_SANITIZE: a comma-separated -fsanitize= list (address,undefined) for
# the programs this repository builds, through scoreood_programs only: the
# library target users link (scoreood::scoreood) never carries it.
#
# UBSan is made fatal (-fno-sanitize-recover) so a report fails the test that
# triggered it instead of scrolling by. -fno-omit-frame-pointer gives usable
# stack traces. OpenMP: libgomp is not instrumented, which ASan and UBSan
# tolerate (they intercept malloc/free and check only instrumented code); only
# ThreadSanitizer would need an instrumented runtime, so `thread` is refused.
if(NOT CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
  message(FATAL_ERROR "SCOREOOD_SANITIZE needs GCC or Clang, not ${CMAKE_CXX_COMPILER_ID}")
endif()
if(SCOREOOD_SANITIZE MATCHES "thread" AND SCOREOOD_SANITIZE MATCHES "address")
  message(FATAL_ERROR "SCOREOOD_SANITIZE: thread and address cannot be combined")
endif()
if(SCOREOOD_SANITIZE MATCHES "thread")
  message(STATUS "scoreood: ThreadSanitizer does not see libgomp's barriers: run with OMP_NUM_THREADS=1")
endif()
set(_scoreood_san "-fsanitize=${SCOREOOD_SANITIZE}")
target_compile_options(scoreood_programs INTERFACE ${_scoreood_san} -fno-omit-frame-pointer)
target_link_options(scoreood_programs INTERFACE ${_scoreood_san})
if(SCOREOOD_SANITIZE MATCHES "undefined")
  target_compile_options(scoreood_programs INTERFACE -fno-sanitize-recover=undefined)
endif()
message(STATUS "scoreood: programs built with -fsanitize=${SCOREOOD_SANITIZE}")
unset(_scoreood_san)
