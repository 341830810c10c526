// Shared by the tests of hostile files: the message of the FormatError a call
// throws, so a test can check that it names the file and the field.
#pragma once
#include <catch2/catch.hpp>
#include <scoreood/core/error.hpp>

#include <exception>
#include <functional>
#include <string>

namespace scoreood::test {

/// The message of the FormatError `fn` throws ("" and a failed check when it throws something else).
inline std::string format_error(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const FormatError& e) {
    return e.what();
  } catch (const std::exception& e) {
    FAIL_CHECK("expected a FormatError, got: " << e.what());
    return "";
  }
  FAIL_CHECK("expected a FormatError, nothing was thrown");
  return "";
}

}  // namespace scoreood::test
