# cmake -DCXX=... -DFLAGS=... -DSOURCE=x.cpp -DEXPECT=regex -P CompileFail.cmake
# A wrong policy must fail to compile, and the compiler's message must name the
# concept it breaks (one readable reason, not a page of template errors only).
separate_arguments(flags UNIX_COMMAND "${FLAGS}")
execute_process(COMMAND ${CXX} ${flags} -fsyntax-only ${SOURCE}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(rc EQUAL 0)
  message(FATAL_ERROR "${SOURCE} compiled, but its policy is wrong: the concept does not reject it")
endif()
if(NOT err MATCHES "${EXPECT}")
  message(FATAL_ERROR "${SOURCE} failed to compile, but the message does not name '${EXPECT}':\n${err}")
endif()
string(REGEX MATCH "[^\n]*${EXPECT}[^\n]*" line "${err}")
message(STATUS "rejected as expected: ${line}")
