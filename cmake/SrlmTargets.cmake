# Helpers that give every srlm target the same flags and tests the same shape.
set(SRLM_WARNINGS -Wall -Wextra -Wno-unused-parameter)

# srlm_target_defaults(<target>): project warnings, include root.
function(srlm_target_defaults target)
  target_compile_options(${target} PRIVATE ${SRLM_WARNINGS})
  target_include_directories(${target} PUBLIC ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR})
endfunction()

# srlm_add_gtest(<name> SOURCES ... LIBS ... [ENV k=v ...] [TIMEOUT s] [LABELS ...])
# One ctest entry per test binary: each process that loads libtorch pays ~0.5 s, so torch tests are
# grouped into few binaries rather than discovered one by one.
function(srlm_add_gtest name)
  cmake_parse_arguments(ARG "" "TIMEOUT" "SOURCES;LIBS;ENV;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  srlm_target_defaults(${name})
  target_link_libraries(${name} PRIVATE ${ARG_LIBS} GTest::gtest GTest::gmock GTest::gtest_main)
  add_test(NAME ${name} COMMAND ${name} --gtest_color=no)
  set(_env "SRLM_SOURCE_DIR=${PROJECT_SOURCE_DIR}" "SRLM_BUILD_DIR=${PROJECT_BINARY_DIR}"
           "SRLM_VENV_PYTHON=${SRLM_VENV_PYTHON}" ${ARG_ENV})
  set_tests_properties(${name} PROPERTIES ENVIRONMENT "${_env}")
  if(ARG_TIMEOUT)
    set_tests_properties(${name} PROPERTIES TIMEOUT ${ARG_TIMEOUT})
  endif()
  if(ARG_LABELS)
    set_tests_properties(${name} PROPERTIES LABELS "${ARG_LABELS}")
  endif()
endfunction()
