# The lint target: `cmake --build build --target lint` runs every checker the tree
# carries a configuration for, over the project's own sources, and fails on the first
# finding. .ci/run runs it.
#   clang-tidy    .clang-tidy (the analyzer and bugprone checks), on compile_commands.json,
#                 one process per file (run-clang-tidy), as clang 14's analyzer reports a
#                 false uninitialised va_list when one process reads several files
#   cppcheck      warnings, portability and performance, C11
#   clang-format  .clang-format, checked (--dry-run), never rewritten
#   shellcheck    the shell scripts
#   pyflakes      the Python of tests/, scripts/ and bench/
#   luacheck      .luacheckrc over common/lua, and the complete scripts the build makes
find_program(MAILROOM_RUN_CLANG_TIDY NAMES run-clang-tidy run-clang-tidy-14)
find_program(MAILROOM_CPPCHECK cppcheck)
find_program(MAILROOM_CLANG_FORMAT clang-format)
find_program(MAILROOM_SHELLCHECK shellcheck)
find_program(MAILROOM_PYFLAKES NAMES pyflakes3 pyflakes)
find_program(MAILROOM_LUACHECK luacheck)

file(GLOB_RECURSE MAILROOM_LINT_C CONFIGURE_DEPENDS
  ${PROJECT_SOURCE_DIR}/common/*.c ${PROJECT_SOURCE_DIR}/consumer/*.c
  ${PROJECT_SOURCE_DIR}/lib/*.c ${PROJECT_SOURCE_DIR}/cli/*.c ${PROJECT_SOURCE_DIR}/webhook/*.c
  ${PROJECT_SOURCE_DIR}/web/*.c)
file(GLOB_RECURSE MAILROOM_LINT_H CONFIGURE_DEPENDS
  ${PROJECT_SOURCE_DIR}/common/*.h ${PROJECT_SOURCE_DIR}/consumer/*.h
  ${PROJECT_SOURCE_DIR}/lib/*.h ${PROJECT_SOURCE_DIR}/cli/*.h ${PROJECT_SOURCE_DIR}/webhook/*.h
  ${PROJECT_SOURCE_DIR}/web/*.h
  ${PROJECT_SOURCE_DIR}/include/*.h)
file(GLOB MAILROOM_LINT_SH CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/scripts/*)
list(FILTER MAILROOM_LINT_SH EXCLUDE REGEX "\\.py$")
list(APPEND MAILROOM_LINT_SH ${PROJECT_SOURCE_DIR}/.ci/run)
file(GLOB_RECURSE MAILROOM_LINT_SH_TESTS CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/tests/*.sh)
list(APPEND MAILROOM_LINT_SH ${MAILROOM_LINT_SH_TESTS})

foreach(tool MAILROOM_RUN_CLANG_TIDY MAILROOM_CPPCHECK MAILROOM_CLANG_FORMAT MAILROOM_SHELLCHECK
             MAILROOM_PYFLAKES MAILROOM_LUACHECK)
  if(NOT ${tool})
    message(STATUS "lint: ${tool} not found; the lint target will fail (scripts/bootstrap installs it)")
  endif()
endforeach()

add_custom_target(lint
  COMMAND ${MAILROOM_RUN_CLANG_TIDY} -p ${PROJECT_BINARY_DIR} -quiet -j 2
          "${PROJECT_SOURCE_DIR}/(common|consumer|lib|cli|webhook|web)/.*\\.c$"
  COMMAND ${MAILROOM_CPPCHECK} --quiet --error-exitcode=1 --std=c11 --language=c
          --enable=warning,portability,performance --inline-suppr
          --suppress=missingIncludeSystem -D__GNUC__
          -I${PROJECT_SOURCE_DIR}/include -I${PROJECT_SOURCE_DIR}/common
          -I${PROJECT_SOURCE_DIR}/consumer -I${PROJECT_SOURCE_DIR}/webhook
          -I${PROJECT_SOURCE_DIR}/web -I${PROJECT_BINARY_DIR}/include
          -I${MAILROOM_GENERATED_DIR} ${MAILROOM_LINT_C}
  COMMAND ${MAILROOM_CLANG_FORMAT} --dry-run --Werror ${MAILROOM_LINT_C} ${MAILROOM_LINT_H}
  COMMAND ${MAILROOM_SHELLCHECK} ${MAILROOM_LINT_SH}
  COMMAND ${MAILROOM_PYFLAKES} ${PROJECT_SOURCE_DIR}/tests ${PROJECT_SOURCE_DIR}/scripts
          ${PROJECT_SOURCE_DIR}/bench ${PROJECT_SOURCE_DIR}/examples
  COMMAND ${MAILROOM_LUACHECK} --quiet common/lua ${PROJECT_BINARY_DIR}/lua
  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}
  DEPENDS mailroom_common
  COMMENT "lint: clang-tidy, cppcheck, clang-format, shellcheck, pyflakes, luacheck"
  VERBATIM)
