# cmake -DEXAMPLE=examples/quickstart.cpp -DREADME=README.md -P ReadmeSnippet.cmake
# The README's usage snippet must be the compiled example's text between its
# "// --- README snippet begins/ends" markers (one indent level removed), so a
# call renamed in the code cannot survive in the README.
file(READ "${EXAMPLE}" code)
file(READ "${README}" readme)
set(begin_marker "// --- README snippet begins\n")
string(FIND "${code}" "${begin_marker}" b)
string(FIND "${code}" "// --- README snippet ends" e)
if(b EQUAL -1 OR e EQUAL -1 OR e LESS b)
  message(FATAL_ERROR "${EXAMPLE}: README snippet markers not found")
endif()
string(LENGTH "${begin_marker}" n)
math(EXPR b "${b} + ${n}")
math(EXPR len "${e} - ${b}")
string(SUBSTRING "${code}" ${b} ${len} snippet)
string(REGEX REPLACE " +$" "" snippet "${snippet}")          # indent of the end marker
string(REPLACE "\n  " "\n" snippet "\n${snippet}")            # dedent every line
string(SUBSTRING "${snippet}" 1 -1 snippet)
string(FIND "${readme}" "```cpp\n${snippet}```" at)
if(at EQUAL -1)
  message(FATAL_ERROR "${README} does not contain the snippet of ${EXAMPLE}; paste this as its ```cpp block:\n${snippet}")
endif()
message(STATUS "README snippet matches ${EXAMPLE}")
