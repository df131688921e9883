# The Python tests, included by tests/CMakeLists.txt: every unittest case of the
# integration files is one ctest test, and the chaos test is one more.
#
# Names: the dotted path of the file under tests/, then the case's id as unittest prints
# it (Class.method):
#   integration.test_pipeline.DeliveryTest.test_chinese_activation_email_roundtrip
#   integration.test_sentinel.SentinelFailoverTest.test_master_killed
#   chaos.chaos_test                       (a whole program, not a unittest file)
# ctest -R takes a regular expression: anchor it to select exactly one case,
#   ctest -R '^integration\.test_pipeline\.DeliveryTest\.test_chinese_activation_email_roundtrip$'
#   ctest -R '^integration\.test_cli\.'              (one file)
#   ctest -R '^integration\.test_cli\.WatchTest\.'   (one class)
# and run one case without ctest as
#   MAILROOM_BIN_DIR=build/bin /usr/bin/python3 tests/integration/test_pipeline.py DeliveryTest.test_...
#
# The cases are listed at configure time by tests/support/list_cases.py, which imports
# each file without running anything; editing a test file re-runs the configure step.
# Each case runs in its own process with its own servers, so any two can run side by
# side (ctest -j) and in any order. A case that skips itself (unittest prints
# "OK (skipped=1)") is reported as skipped, not passed.

# Debian's python3 (with python3-aiosmtpd and python3-redis), not a pyenv one.
find_program(MAILROOM_PYTHON python3 PATHS /usr/bin NO_DEFAULT_PATH)
if(NOT MAILROOM_PYTHON)
  find_program(MAILROOM_PYTHON python3 REQUIRED)
endif()

# mailroom_python_test(NAME SCRIPT LABEL TIMEOUT [ARG...]): the ARGs go to the script
# (for a unittest file, the selector Class.method).
function(mailroom_python_test name script label timeout)
  add_test(NAME ${name} COMMAND ${MAILROOM_PYTHON} ${PROJECT_SOURCE_DIR}/${script} ${ARGN})
  set_tests_properties(${name} PROPERTIES
    LABELS ${label} TIMEOUT ${timeout}
    SKIP_REGULAR_EXPRESSION "OK \\(skipped=1\\)"
    ENVIRONMENT "MAILROOM_BIN_DIR=${PROJECT_BINARY_DIR}/bin;MAILROOM_EXAMPLES_DIR=${PROJECT_BINARY_DIR}/examples;PYTHONDONTWRITEBYTECODE=1")
endfunction()

# Every tests/integration/test_*.py; a new one is picked up at the next build.
file(GLOB _mailroom_py_files RELATIVE ${PROJECT_SOURCE_DIR} CONFIGURE_DEPENDS
  ${PROJECT_SOURCE_DIR}/tests/integration/test_*.py)
list(SORT _mailroom_py_files)
if(MAILROOM_SANITIZE)
  list(REMOVE_ITEM _mailroom_py_files tests/integration/test_memcheck.py) # valgrind cannot run an ASan binary
endif()

# Seconds per case. A case of the slow files gets 300 and starts first under ctest -j
# (COST), so that the short cases fill the other slot while it runs. Sentinel: the kill -9
# failover (about 50 s) and the graceful SENTINEL FAILOVER (the old master stays up and is
# named by the sentinels for about a second after its replica was promoted; about 20 s)
# are two cases, so two entries.
set(_mailroom_py_timeout 120)
set(_mailroom_py_slow test_sentinel test_memcheck)

execute_process(
  COMMAND ${MAILROOM_PYTHON} tests/support/list_cases.py ${_mailroom_py_files}
  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}
  OUTPUT_VARIABLE _mailroom_py_cases
  ERROR_VARIABLE _mailroom_py_errors
  RESULT_VARIABLE _mailroom_py_rc)
if(NOT _mailroom_py_rc EQUAL 0)
  message(WARNING "tests/support/list_cases.py: some Python test files could not be "
                  "listed; each is registered whole:\n${_mailroom_py_errors}")
endif()
list(TRANSFORM _mailroom_py_files PREPEND ${PROJECT_SOURCE_DIR}/ OUTPUT_VARIABLE _mailroom_py_deps)
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
  ${_mailroom_py_deps} ${PROJECT_SOURCE_DIR}/tests/support/list_cases.py)

string(REPLACE "\n" ";" _mailroom_py_cases "${_mailroom_py_cases}")
foreach(_line IN LISTS _mailroom_py_cases)
  if(_line STREQUAL "")
    continue()
  endif()
  string(REPLACE " " ";" _fields "${_line}")
  list(GET _fields 0 _file)                      # tests/integration/test_cli.py
  get_filename_component(_stem ${_file} NAME_WE) # test_cli
  get_filename_component(_dir ${_file} DIRECTORY)
  get_filename_component(_dir ${_dir} NAME)      # integration
  set(_timeout ${_mailroom_py_timeout})
  set(_cost 0)
  if(_stem IN_LIST _mailroom_py_slow)
    set(_timeout 300)
    set(_cost 50)
  endif()
  list(LENGTH _fields _n)
  if(_n GREATER 1)
    list(GET _fields 1 _case)                    # WatchTest.test_...
    set(_name ${_dir}.${_stem}.${_case})
    mailroom_python_test(${_name} ${_file} ${_dir} ${_timeout} ${_case})
  else()
    set(_name ${_dir}.${_stem})
    mailroom_python_test(${_name} ${_file} ${_dir} ${_timeout})
  endif()
  set_tests_properties(${_name} PROPERTIES COST ${_cost})
endforeach()

mailroom_python_test(chaos.chaos_test tests/chaos/chaos_test.py chaos 300)
set_tests_properties(chaos.chaos_test PROPERTIES COST 100)
